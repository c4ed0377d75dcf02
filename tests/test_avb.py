"""Adversarial Variational Bayes: implicit posterior, critic as KL, a game of two phases."""

import pytest
import torch

from vaekit import ratio
from vaekit.data import load
from vaekit.errors import VaekitError
from vaekit.models import avb, build, config_dict, from_config  # noqa: F401  (avb registers "avb")
from vaekit.train import TrainConfig, fit


def small(**kw):
    cfg = dict(data_shape=(8, 8), latent_dim=3, hidden=(32,), critic_hidden=(32, 32), noise_dim=4)
    cfg.update(kw)
    return build("avb", **cfg)


def test_implicit_posterior_shapes_and_no_density():
    torch.manual_seed(0)
    model = small()
    x = torch.rand(5, 8, 8)
    q = model.encode(x)
    assert q.rsample((7,)).shape == (7, 5, 3) and q.sample().shape == (5, 3)
    assert q.mean.shape == (5, 3) and (q.variance > 0).all()
    assert model.embed(x).shape == (5, 3) and model.reconstruct(x).shape == (5, 8, 8)
    with pytest.raises(NotImplementedError, match="no density"):
        q.log_prob(q.sample())
    assert config_dict(from_config(config_dict(model))) == config_dict(model)


@pytest.mark.parametrize("contrast", [True, False])
def test_two_phases_each_player_with_its_own_parameters(contrast):
    from vaekit.train import resolve_phases

    torch.manual_seed(1)
    model = small(contrast=contrast)
    x = torch.bernoulli(torch.full((6, 8, 8), 0.3))
    critic, elbo = resolve_phases(model)
    assert (critic.name, elbo.name) == ("critic", "elbo")  # the critic first, as a GAN's discriminator
    mine = {n: {id(p) for p in ph.parameters(model)} for n, ph in (("elbo", elbo), ("critic", critic))}
    assert mine["critic"] == {id(p) for p in model.critic.parameters()}
    assert mine["elbo"] | mine["critic"] == {id(p) for p in model.parameters()} and not mine["elbo"] & mine["critic"]
    # the critic's phase sends no gradient to the encoder or decoder
    loss = critic.loss(model, x, 0)
    assert set(loss.terms) == {"disc_loss", "disc_acc"}
    loss.value.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("critic."))
    assert all(p.grad is not None for p in model.critic.parameters())
    loss = elbo.loss(model, x, 0)
    assert abs(loss.value.item() + loss.terms["elbo"].item()) < 1e-4  # the logged value is -ELBO


def test_a_checkpoint_written_before_the_phases_loads_its_weights(tmp_path):
    """A run from when AVB played both players in one loss ({"loss": optimiser}): eval, sample and --init-from load
    its weights; --resume is a one-line error (its optimiser state belongs to no phase now)."""
    from vaekit.checkpoint import load_model, restore, save
    from vaekit.train import make_optimisers, resolve_phases

    model = small()
    old = torch.optim.Adam(model.parameters())
    model.loss(torch.rand(4, 8, 8)).value.backward()
    old.step()
    save(tmp_path / "checkpoint.safetensors", model, {"loss": old})
    loaded = load_model(tmp_path / "checkpoint.safetensors").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    opts = make_optimisers(model, resolve_phases(model), TrainConfig(), torch.device("cpu"))
    with pytest.raises(
        VaekitError,
        match=r"holds optimizers of phases \['loss'\] but the run has optimizers of "
        r"phases \['critic', 'elbo'\]",
    ):
        restore(tmp_path / "checkpoint.safetensors", model, opts)


def test_standardise_is_leave_one_out_gaussian_algebra():
    model = small()
    z = torch.randn(50, 4, 3) * 0.5 + 1.0
    zt, exact = model.standardise(z)
    for k in (0, 17, 49):
        others = torch.cat([z[:k], z[k + 1 :]])
        m, s = others.mean(0), others.std(0)
        assert torch.allclose(zt[k], (z[k] - m) / s, atol=1e-4)
        by_hand = (-0.5 * zt[k] ** 2 - s.log() + 0.5 * z[k] ** 2).sum(-1)  # log N(z; m, s) - log N(z; 0, 1)
        assert torch.allclose(exact[k], by_hand, atol=1e-4)
    assert abs(zt.mean().item()) < 0.1 and abs(zt.std().item() - 1) < 0.1


def test_trains_on_digits_and_critic_tracks_the_kl():
    """After training, a fresh critic fitted to the model's own (x, z~) pairs agrees with the model's critic."""
    torch.manual_seed(2)
    train = load("digits", "train")
    model = small(latent_dim=4, hidden=(64,), critic_hidden=(64, 64))
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(load("digits", "test").x, generator=g)
    with torch.no_grad():
        before = model.loss(x).terms["elbo"].item()
    h = fit(
        model, train.x, TrainConfig(epochs=25, batch_size=64, lr=2e-3, binarize=True, progress=False, tensorboard=False)
    )
    with torch.no_grad():
        after = {**model.loss(x).terms, **model.critic_loss(x).terms}
    assert h.stopped == "completed"
    assert after["elbo"].item() > before + 10, (before, after)
    assert 0.45 < after["disc_acc"].item() < 0.9
    assert after["kl"].item() > 0

    # a fresh critic, trained on an endless stream of the model's own (x, z~) pairs, agrees with the model's
    xs = torch.bernoulli(train.x, generator=g)

    def pairs(n):
        with torch.no_grad():
            xb = xs[torch.randint(len(xs), (n,))]
            zt, _ = model.standardise(model.encode(xb).rsample((model.config.n_moments,)))
            return torch.cat([xb.flatten(1), zt[0]], 1)

    def reference(n):
        return torch.cat([xs[torch.randint(len(xs), (n,))].flatten(1), torch.randn(n, 4)], 1)

    with torch.no_grad():
        zt, _ = model.standardise(model.encode(xs).rsample((model.config.n_moments,)))
        t_model = model.log_ratio(xs, zt).mean().item()
    fresh = ratio.kl_divergence(pairs, reference, steps=1500, batch_size=256, hidden=(64, 64), lr=3e-3, n_eval=10000)
    assert abs(t_model - fresh.kl) < 0.25 + 3 * fresh.standard_error, (t_model, fresh.kl, fresh.standard_error)


def test_bad_config():
    with pytest.raises(VaekitError, match="noise_dim"):
        small(noise_dim=0)
    with pytest.raises(VaekitError, match="n_moments"):
        small(n_moments=2)
