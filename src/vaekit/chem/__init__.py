"""Molecules for the chemical VAE: vocabularies (SMILES/SELFIES), property scores, metrics, latent optimisation.

Needs the `chem` extra (`pip install vaekit[chem]`): RDKit, selfies, botorch, fcd-torch.
"""
