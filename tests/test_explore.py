"""The latent-space explorer: the JSON API (Starlette's TestClient), bad input, static files, the
refusal of other hosts and origins (DNS rebinding, CSRF), security headers, fuzzing of the API, and a
headless-Chromium test of the page for an image and a molecule model (skipped when Chromium, chromedriver or
Selenium are absent, unless VAEKIT_REQUIRE_BROWSER=1)."""

import base64
import importlib
import importlib.util
import io
import json
import os
import shutil
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

# CI sets VAEKIT_REQUIRE_BROWSER=1: there the page's tests must run, so a missing package fails them instead of
# skipping this module
REQUIRE_BROWSER = os.environ.get("VAEKIT_REQUIRE_BROWSER") == "1"


def needs(module: str, reason: str):
    """pytest.importorskip, but an ImportError where VAEKIT_REQUIRE_BROWSER=1."""
    return importlib.import_module(module) if REQUIRE_BROWSER else pytest.importorskip(module, reason=reason)


needs("starlette", "the explorer needs starlette (pip install 'vaekit[explore]')")
needs("httpx", "Starlette's TestClient needs httpx")

from vaekit.data import load  # noqa: E402
from vaekit.errors import VaekitError  # noqa: E402
from vaekit.explore.server import (  # noqa: E402
    MAX_BATCH,
    MAX_BODY,
    SECURITY_HEADERS,
    STATIC,
    Explorer,
    allowed_hosts,
    create_app,
    load_run,
)
from vaekit.models import build  # noqa: E402
from vaekit.train import TrainConfig, fit  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

ROUND = (0, 6, 8, 9)  # a made-up "attribute" of digits, to have an attribute slider without fonts
PORT = 8765  # the port the test clients' apps are made for (nothing listens there)
OWN = f"127.0.0.1:{PORT}"


def local_client(explorer) -> TestClient:
    """A TestClient speaking to the app as a browser on this machine would: Host 127.0.0.1:PORT."""
    return TestClient(create_app(explorer, port=PORT), base_url=f"http://{OWN}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny VAE with a 3-D latent trained on the embedded digits for a few seconds, as a run directory."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("explore") / "digits-vae"
    model = build("vae", data_shape=(8, 8), latent_dim=3, hidden=(64,))
    fit(
        model,
        load("digits", "train"),
        TrainConfig(epochs=8, batch_size=64, progress=False, tensorboard=False),
        run_dir=run_dir,
        meta={"spec": "digits", "split": "train"},
    )
    return run_dir


@pytest.fixture(scope="module")
def explorer(run):
    ex = load_run(run)
    test = load("digits", "test")
    ex.directions += Explorer(
        ex.model, test.x, test.y, attributes={"round": np.isin(test.y.numpy(), ROUND)}
    ).directions[-1:]
    return ex


@pytest.fixture(scope="module")
def client(explorer):
    return local_client(explorer)


def png_size(url: str) -> tuple[int, int]:
    from PIL import Image

    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size


# -- the API -------------------------------------------------------------------------------------
def test_info_describes_the_run(client, explorer):
    info = client.get("/api/info").json()
    test = load("digits", "test")
    assert info["kind"] == "image" and info["latent_dim"] == 3 and info["n"] == len(test)
    assert info["labels"] == test.y.tolist()
    # map positions are the codes projected on the two principal axes through the mean code
    z = explorer.z
    xy = (z - z.mean(0)) @ torch.tensor(info["plane"]).T
    assert np.allclose(info["points"], xy.numpy(), atol=1e-5)
    plane = torch.tensor(info["plane"])
    assert torch.allclose(plane @ plane.T, torch.eye(2), atol=1e-5)  # orthonormal axes
    names = [d["name"] for d in info["directions"]]
    assert names == ["z1", "z2", "z3", "round"]  # small latent: one per coordinate
    # the attribute slider is mean(z | round) - mean(z | not round)
    has = torch.from_numpy(np.isin(test.y.numpy(), ROUND))
    assert np.allclose(info["directions"][-1]["vector"], (z[has].mean(0) - z[~has].mean(0)).numpy(), atol=1e-5)


def test_decode_matches_the_model(client, explorer):
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    out = client.post("/api/decode", json={"z": z.tolist(), "format": "array"})
    assert out.status_code == 200
    with torch.no_grad():
        want = explorer.model.generate(z)
    assert np.allclose(out.json()["items"], want.numpy(), atol=1e-6)
    png = client.post("/api/decode", json={"z": z[0].tolist()}).json()["items"]  # one vector is a batch of 1
    assert len(png) == 1 and png_size(png[0]) == (8, 8)


def test_samples_from_the_prior_and_from_samplers_fitted_on_the_codes_shown(client, explorer):
    assert client.get("/api/info").json()["samplers"] == ["gmm", "prior", "twostage"]
    prior = client.post("/api/sample", json={"n": 5, "seed": 3, "format": "array"}).json()
    assert prior["sampler"] == "prior" and prior["fitted_on"] == 0
    z = torch.tensor(prior["z"])
    from vaekit import samplers

    want = samplers.fit("prior", explorer.model).sample(5, torch.Generator().manual_seed(3))
    assert torch.equal(z, want.float()) and abs(float(z.mean())) < 2  # p(z), seeded
    with torch.no_grad():
        assert np.allclose(prior["items"], explorer.model.generate(z).numpy(), atol=1e-6)
    assert np.allclose(prior["xy"], explorer.to_map(z).numpy(), atol=1e-6)
    gmm = client.post("/api/sample", json={"sampler": "gmm", "n": 256, "seed": 1}).json()
    assert gmm["fitted_on"] == len(explorer.z) and len(gmm["items"]) == 256
    drawn = torch.tensor(gmm["z"])  # drawn where the codes are: mean and spread near theirs
    assert torch.allclose(drawn.mean(0), explorer.z.mean(0), atol=0.3 * float(explorer.z.std()))
    again = client.post("/api/sample", json={"sampler": "gmm", "n": 256, "seed": 1}).json()
    assert again["z"] == gmm["z"]  # fitted once, and the seed fixes the draw


def test_encode_and_interpolate(client, explorer):
    out = client.post("/api/encode", json={"index": [3, 7]}).json()
    assert np.allclose(out["z"], explorer.z[[3, 7]].numpy(), atol=1e-6)
    assert np.allclose(out["xy"], client.get("/api/info").json()["points"][3:8:4], atol=1e-5)
    x = load("digits", "test").x[:2]
    out = client.post("/api/encode", json={"x": x.tolist()}).json()
    assert np.allclose(out["z"], explorer.z[:2].numpy(), atol=1e-5)
    for method in ("linear", "spherical"):
        res = client.post("/api/interpolate", json={"a": 3, "b": 7, "steps": 5, "method": method}).json()
        path = torch.tensor(res["z"])
        assert path.shape == (5, 3) and len(res["items"]) == 5
        assert torch.allclose(path[0], explorer.z[3], atol=1e-5) and torch.allclose(path[-1], explorer.z[7], atol=1e-5)
        if method == "linear":  # equal steps on a straight line
            assert torch.allclose(path[1] - path[0], path[4] - path[3], atol=1e-5)
        else:  # radius interpolated linearly
            r = path.norm(dim=1)
            assert torch.allclose(r[2], (r[0] + r[4]) / 2, atol=1e-4)


BAD = [
    ("/api/decode", {"z": [[1.0, 2.0]]}, 400, "list of 3 numbers"),
    ("/api/decode", {"z": [[1.0, 2.0, 3.0, 4.0]]}, 400, "list of 3 numbers"),
    ("/api/decode", {"z": [[1, "a", 2]]}, 400, "numbers only"),
    ("/api/decode", {"z": [[1, True, 2]]}, 400, "numbers only"),
    ("/api/decode", {"z": []}, 400, "non-empty"),
    ("/api/decode", {}, 400, "non-empty"),
    ("/api/decode", {"z": [[1, 2, 10**400]]}, 400, "too large"),
    ("/api/decode", {"z": [[1e39, 0, 0]]}, 400, "too large"),
    ("/api/decode", {"z": [[3e38, 3e38, 3e38]]}, 400, "too large"),  # finite float32, but a 500 before
    ("/api/decode", {"z": [[0, 0, -2e4]], "format": "array"}, 400, "from -10000 to 10000"),
    ("/api/decode", {"z": [[0, 0, 0]] * (MAX_BATCH + 1)}, 413, "at most"),
    ("/api/decode", {"z": [[0, 0, 0]], "format": "gif"}, 400, "format"),
    ("/api/decode", {"z": [[0, 0, 0]], "run": "nope"}, 404, "unknown run"),
    ("/api/encode", {"index": [10**6]}, 400, "item index"),
    ("/api/encode", {"index": -1}, 400, "item index"),
    ("/api/encode", {"x": [[1, 2]]}, 400, "shape"),
    ("/api/encode", {"x": [[["a"] * 8] * 8]}, 400, "numeric"),
    ("/api/encode", {}, 400, "give 'index'"),
    ("/api/interpolate", {"a": 0, "b": 1, "steps": 1000}, 400, "steps"),
    ("/api/interpolate", {"a": 0, "b": 1, "method": "cubic"}, 400, "method"),
    ("/api/interpolate", {"a": 0}, 400, "item index"),
    ("/api/interpolate", {"za": [0, 0], "zb": [0, 0, 0]}, 400, "list of 3 numbers"),
    ("/api/interpolate", {"za": [3e38] * 3, "zb": [0, 0, 0]}, 400, "too large"),
    ("/api/interpolate", {"za": [0, 0, 0], "zb": [-3e38, 1, 1], "method": "spherical"}, 400, "too large"),
    ("/api/encode", {"x": [[[3e38] * 8] * 8]}, 400, "too large"),
    ("/api/encode", {"x": [[[1e39] * 8] * 8]}, 400, "NaN or infinite"),
    ("/api/encode", {"x": [[[10**400] * 8] * 8]}, 400, "numeric arrays"),
    # wrong types anywhere
    ("/api/interpolate", {"a": 0, "b": 1, "method": ["linear"]}, 400, "method"),
    ("/api/interpolate", {"a": 0, "b": 1, "method": {"x": 1}}, 400, "method"),
    ("/api/interpolate", {"a": 0, "b": 1, "steps": "5"}, 400, "steps"),
    ("/api/interpolate", {"a": 0, "b": 1, "steps": 10**1000}, 400, "steps"),
    ("/api/interpolate", {"a": 1.5, "b": 1}, 400, "item index"),
    ("/api/decode", {"z": [[0, 0, 0]], "format": ["png"]}, 400, "format"),
    ("/api/decode", {"z": {"a": 1}}, 400, "non-empty list"),
    ("/api/decode", {"z": [[0, 0, 0]], "run": {"a": 1}}, 404, "unknown run"),
    ("/api/encode", {"index": "3"}, 400, "index"),
    ("/api/encode", {"x": "abc"}, 400, "non-empty list"),
    ("/api/sample", {"sampler": "flow"}, 400, "known samplers: gmm, prior, twostage"),
    ("/api/sample", {"sampler": ["gmm"]}, 400, "unknown sampler"),
    ("/api/sample", {"n": 0}, 400, "field 'n'"),
    ("/api/sample", {"n": MAX_BATCH + 1}, 400, "field 'n'"),
    ("/api/sample", {"n": "8"}, 400, "field 'n'"),
    ("/api/sample", {"seed": -1}, 400, "field 'seed'"),
    ("/api/sample", {"seed": 1.5}, 400, "field 'seed'"),
    ("/api/sample", {"format": "gif"}, 400, "format"),
]


@pytest.mark.parametrize(
    "path,body,status,words", BAD, ids=[f"{p.split('/')[-1]}-{i}" for i, (p, *_) in enumerate(BAD)]
)
def test_bad_input_is_a_4xx_with_a_message(client, path, body, status, words):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg


@pytest.mark.parametrize(
    "raw,words",
    [
        ('{"z": [[NaN, 0, 0]]}', "NaN or infinite"),
        ('{"z": [[Infinity, 0, 0]]}', "NaN or infinite"),
        ('{"z": [[0, 0, 0]', "malformed JSON"),
        ("", "malformed JSON"),
        (b"\xff\xfe{}", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"z": ' + "[" * 100000, "malformed JSON"),
        ('{"z": [[' + "9" * 5000 + ", 0, 0]]}", "too many digits"),  # beyond Python's int-parsing limit
        ('{"index": -' + "1" * 5000 + "}", "too many digits"),
        ('{"z": [[1e999, 0, 0]]}', "NaN or infinite"),  # a literal that overflows a double
    ],
)
def test_malformed_json_is_a_400(client, raw, words):
    r = client.post("/api/decode", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and words in r.json()["error"]


def test_huge_body_is_refused_before_parsing(client):
    r = client.post(
        "/api/decode", content=b"[" + b"0," * MAX_BODY + b"0]", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "too large" in r.json()["error"]
    assert client.get("/api/info?run=nope").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e/%2e%2e/errors.py",
        "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/__init__.py",
        "/static/nope.js",
    ],
)
def test_static_files_cannot_escape_the_package(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert b"import" not in r.content and b"root:" not in r.content


def test_static_files_and_page_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing fetched from elsewhere (no CDN)
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert "://" not in r.text


def test_load_run_errors(tmp_path):
    with pytest.raises(VaekitError, match="no such run directory"):
        load_run(tmp_path / "missing")
    with pytest.raises(VaekitError, match="no checkpoint"):
        load_run(tmp_path)


def test_field_and_font_views():
    torch.manual_seed(0)
    field = build("vae", data_shape=(30,), latent_dim=2, hidden=(16,), likelihood="gaussian", sigma=0.1)
    c = local_client(Explorer(field, torch.randn(20, 30)))
    assert c.get("/api/info").json()["kind"] == "field"
    items = c.post("/api/decode", json={"z": [[0, 0], [1, 0]]}).json()["items"]  # a field comes back as numbers
    assert np.asarray(items).shape == (2, 30)

    import vaekit.models.fontvae  # noqa: F401  (registers "fontvae")

    font = build(
        "fontvae", data_shape=(62, 8, 8), latent_dim=4, hidden=(16,), glyph_hidden=16, glyph_features=4, char_dim=4
    )
    bold = np.arange(12) % 2 == 0
    serif = np.array([np.nan, 1, 0] * 4)
    ex = Explorer(
        font, torch.rand(12, 62, 8, 8), attributes={"bold": bold, "italic": np.zeros(12, bool), "serif": serif}
    )
    c = local_client(ex)
    info = c.get("/api/info").json()
    assert info["kind"] == "font"
    assert [d["name"] for d in info["directions"] if d["type"] == "attribute"] == [
        "bold",
        "serif",
    ]  # italic: none have it
    # with groups (a font's family and other styles), the direction is measured within the groups that have
    # the attribute both ways: here the first two pairs; the other fonts are alone in their groups
    groups = [0, 0, 1, 1, *range(2, 10)]
    grouped = Explorer(font, ex.x, attributes={"bold": bold}, attribute_groups={"bold": groups})
    z = grouped.z
    want = ((z[0] - z[1]) + (z[2] - z[3])) / 2
    assert np.allclose(grouped.directions[-1]["vector"], want.numpy(), atol=1e-5)
    alone = Explorer(font, ex.x, attributes={"bold": bold}, attribute_groups={"bold": list(range(12))})
    assert np.allclose(alone.directions[-1]["vector"], (z[bold].mean(0) - z[~bold].mean(0)).numpy(), atol=1e-5)
    item = c.post("/api/decode", json={"z": [[0.0] * 4], "word": "Rag7"}).json()["items"][0]
    assert png_size(item) == (4 * 8, 8)  # the word, glyph by glyph
    r = c.post("/api/decode", json={"z": [[0.0] * 4], "word": "h!"})
    assert r.status_code == 400 and "'!'" in r.json()["error"]


def test_cli_explore_rejects_a_missing_run(tmp_path, capsys):
    from vaekit.cli import main

    with pytest.raises(SystemExit) as e:
        main(["explore", str(tmp_path / "nope"), "--no-browser"])
    assert e.value.code == 2 and "no such run directory" in capsys.readouterr().err


# -- the page in a real browser ------------------------------------------------------------------
# A headless Chromium loads the page, hovers the map, moves a slider and runs an interpolation, for an
# image model (the digits VAE above) and a molecule model (the committed pretrained chemical VAE). CI sets
# VAEKIT_REQUIRE_BROWSER=1 and installs Chromium: there a browser test that cannot run fails, never skips.
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "chemvae-selfies"


def cannot_run(reason: str):
    """Skip a browser test that lacks a tool or data set, or fail it where VAEKIT_REQUIRE_BROWSER=1."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason}; VAEKIT_REQUIRE_BROWSER=1 does not allow skipping the browser tests", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_thread(explorer):
    """Serve `explorer` with uvicorn on a free port in a daemon thread: (url, stop)."""
    uvicorn = needs("uvicorn", "the explorer's server needs uvicorn (pip install 'vaekit[explore]')")
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(explorer, port=port), host="127.0.0.1", port=port, log_level="warning")
    )
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"

    def stop():
        srv.should_exit = True
        t.join(10)

    return f"http://127.0.0.1:{port}/", stop


@pytest.fixture
def server(explorer):
    url, stop = serve_in_thread(explorer)
    yield url
    stop()


@pytest.fixture(scope="module")
def pretrained_explorer():
    """The committed pretrained chemical VAE (SELFIES, 56-D latent) on 300 MOSES test molecules, as
    `vaekit explore models/chemvae-selfies` shows it."""
    for module in ("rdkit", "selfies"):
        if importlib.util.find_spec(module) is None:
            cannot_run(f"the molecule page needs {module} (pip install 'vaekit[chem]')")
    if _moses_test_file() is None:
        cannot_run(
            "the molecule page needs the MOSES test split under $VAEKIT_DATA "
            "(set VAEKIT_DATA to the folder of the staged data sets)"
        )
    torch.set_num_threads(1)
    return load_run(PRETRAINED, n_molecules=N_MOL)


@pytest.fixture
def pretrained_server(pretrained_explorer):
    url, stop = serve_in_thread(pretrained_explorer)
    yield url
    stop()


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium driven by Selenium, keeping the page's console log; quit after the test."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        cannot_run("headless browser test needs Chromium and chromedriver (`make browser-test` installs them)")
    if importlib.util.find_spec("selenium") is None:
        cannot_run("headless browser test needs selenium (pip install 'vaekit[test]')")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,900",
    ):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def walk_the_page(driver, url: str, decoded, path_items, shot: Path):
    """Load the page; hover two points of the map, move the first slider to its end and run an interpolation,
    checking after each that the decoded item changed (`decoded(driver)`: a text that identifies the item shown,
    `path_items(driver)`: those of the interpolation path); no console errors; a screenshot saved as `shot`
    (copied to $VAEKIT_SCREENSHOT_DIR when set, to look at). Returns the texts of every item seen."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    view, canvas = driver.find_element(By.ID, "view"), driver.find_element(By.ID, "map")
    seen = [decoded(driver)]

    def changes(action):
        """Do `action`; wait for a new decoding that shows another item than before."""
        old, version = decoded(driver), view.get_attribute("data-version")
        action()
        wait.until(lambda d: view.get_attribute("data-version") != version and decoded(d) != old)
        seen.append(decoded(driver))

    try:
        for dx, dy in ((-150, 150), (150, -150)):  # hovering (no click) decodes the point under the mouse
            changes(lambda dx=dx, dy=dy: ActionChains(driver).move_to_element_with_offset(canvas, dx, dy).perform())
        slider = driver.find_element(By.CSS_SELECTOR, "#sliders input.slider")
        changes(lambda: slider.send_keys(Keys.END))
        assert float(slider.get_attribute("value")) == 3.0

        steps = int(driver.find_element(By.ID, "isteps").get_attribute("value"))
        driver.find_element(By.ID, "interp").click()
        wait.until(lambda d: len(path_items(d)) == steps)
        path = path_items(driver)
        assert path[0] != path[-1], path  # the decoded items change along the path
        seen += path

        from selenium.webdriver.support.ui import Select  # draw samples from a sampler fitted on the codes

        Select(driver.find_element(By.ID, "sampler")).select_by_value("gmm")
        n = int(driver.find_element(By.ID, "sn").get_attribute("value"))
        driver.find_element(By.ID, "draw").click()
        box = driver.find_element(By.ID, "samples")
        wait.until(
            lambda d: box.get_attribute("data-sampler") == "gmm" and len(box.find_elements(By.XPATH, "./*")) == n
        )

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # CSP violations among them
        assert not errors, errors
        assert "error" not in driver.find_element(By.ID, "status").get_attribute("class")
    finally:
        assert driver.save_screenshot(str(shot))
        if os.environ.get("VAEKIT_SCREENSHOT_DIR"):  # keep a copy to look at
            shutil.copy(shot, Path(os.environ["VAEKIT_SCREENSHOT_DIR"]) / shot.name)
    return seen


def test_browser_image_page(browser, server, tmp_path):
    """The digits VAE's page: the decoded digit (a PNG) changes with the mouse over the map, the attribute
    slider and along an interpolation; the browser enforces the page's CSP."""
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def decoded(d):
        src = d.find_element(By.ID, "decoded").get_attribute("src")
        assert src.startswith("data:image/png;base64,")
        return src

    seen = walk_the_page(
        browser,
        server,
        decoded,
        lambda d: [i.get_attribute("src") for i in d.find_elements(By.CSS_SELECTOR, "#path img")],
        tmp_path / "explore-image.png",
    )
    assert len(set(seen)) >= 5 and all(png_size(s) == (8, 8) for s in seen)
    assert browser.find_element(By.CSS_SELECTOR, "#sliders input.slider").get_attribute("data-name") == "z1"

    # the attribute slider re-decodes too
    slider = browser.find_element(By.CSS_SELECTOR, "input.slider.attribute")
    old = decoded(browser)
    slider.send_keys(Keys.HOME)
    WebDriverWait(browser, 20).until(lambda d: decoded(d) != old)
    assert float(slider.get_attribute("value")) == -3.0
    # moved along an attribute, the code keeps the norm it had off the attribute sliders ("spherical")
    z, before = browser.execute_script("""
        const before = state.base.slice();
        state.info.directions.forEach((d, j) => {
          if (d.type === "attribute") return;
          for (let i = 0; i < before.length; i++) before[i] += state.sliders[j] * d.vector[i];
        });
        return [currentZ(), before];""")
    assert np.isclose(np.linalg.norm(z), np.linalg.norm(before), rtol=1e-6) and not np.allclose(z, before)

    # the browser enforces the CSP on this page: inline styles and scripts put in as markup do nothing
    colour, ran = browser.execute_script("""
        const d = document.createElement("div");
        d.innerHTML = '<i style="color: rgb(255, 0, 0)">x</i><img src="x" onerror="window.pwned = 1">';
        document.body.append(d);
        await new Promise((ok) => setTimeout(ok, 300));
        return [getComputedStyle(d.firstChild).color, window.pwned === 1];""")
    assert colour != "rgb(255, 0, 0)" and not ran
    assert any("Content Security Policy" in e["message"] for e in browser.get_log("browser"))
    assert Image.open(tmp_path / "explore-image.png").size == tuple(
        browser.execute_script("return [window.innerWidth * devicePixelRatio, window.innerHeight * devicePixelRatio]")
    )


def test_browser_molecule_page(browser, pretrained_server, pretrained_explorer, tmp_path):
    """The pretrained chemical VAE's page: a logP colour bar; the decoded molecule (RDKit's drawing and its
    SMILES) changes with the mouse over the map, a principal-axis slider and along an interpolation path of
    molecules; no console errors."""
    from selenium.webdriver.common.by import By

    def decoded(d):  # the decoded SMILES; a valid one is drawn, an invalid one shows the "invalid" box
        smiles = d.find_element(By.CSS_SELECTOR, "#mol-info tr:first-child td:nth-child(2)").text
        img, bad = d.find_element(By.ID, "decoded"), d.find_element(By.ID, "invalid")
        if img.is_displayed():
            assert img.get_attribute("src").startswith("data:image/svg+xml;base64,")
            assert d.execute_script("return arguments[0].naturalWidth", img) > 0
            assert "MOSES filters" in d.find_element(By.ID, "mol-info").text  # "pass", or the alert it raises
        else:
            assert bad.is_displayed() and "invalid" in d.find_element(By.ID, "mol-info").text
        return smiles

    def path_items(d):
        figs = d.find_elements(By.CSS_SELECTOR, "#path figure")
        assert all(f.find_elements(By.TAG_NAME, "img") or "invalid" in f.text for f in figs)
        return [f.get_attribute("title") for f in figs]

    seen = walk_the_page(browser, pretrained_server, decoded, path_items, tmp_path / "explore-molecule.png")
    legend = browser.find_element(By.ID, "legend")
    assert "continuous" in legend.get_attribute("class") and legend.text.startswith("logP")
    lo, hi = (float(t) for t in legend.text.split()[1:3])
    assert lo < hi
    info = browser.find_element(By.ID, "run-info").text
    assert info.startswith("chemvae-selfies:") and "56-D latent" in info and f"{N_MOL} molecules" in info
    assert len(set(seen)) >= 4 and "" not in seen


def test_info_is_json_serialisable_without_nan(client):
    text = client.get("/api/info").text
    assert "NaN" not in text and json.loads(text)["run"] == "digits-vae"


def test_cli_serves_the_run_on_localhost(run):
    """`vaekit explore RUN --no-browser --port P` answers on 127.0.0.1 and keeps answering after bad requests."""
    import http.client
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaekit", "explore", str(run), "--no-browser", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, info = time.time() + 60, None
        while info is None and time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/api/info")
                info = json.loads(conn.getresponse().read())
            except OSError:
                time.sleep(0.2)
        assert info is not None and info["run"] == "digits-vae"
        for body in (b"{oops", b'{"z": [[1e999, 0, 0]]}', b'{"z": [[0, 0]]}'):
            conn.request("POST", "/api/decode", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 400 and b"error" in r.read()
        conn.request("POST", "/api/decode", body=b'{"z": [[0, 0, 0]]}', headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["items"][0].startswith("data:image/png")
        assert r.getheader("Content-Security-Policy") == SECURITY_HEADERS["Content-Security-Policy"]
        # the served app is made for this port: another Host (DNS rebinding) or Origin (CSRF) is refused
        for host in ("evil.example.com", f"evil.example.com:{port}", f"127.0.0.1:{port + 1}"):
            conn.request("GET", "/api/info", headers={"Host": host})
            r = conn.getresponse()
            assert r.status == 400 and b"points" not in r.read()
        conn.request(
            "POST",
            "/api/decode",
            body=b'{"z": [[0, 0, 0]]}',
            headers={"Content-Type": "text/plain", "Origin": "http://evil.example.com"},
        )
        r = conn.getresponse()
        assert r.status == 403 and b"cross-origin" in r.read()
        for host in (f"localhost:{port}", f"[::1]:{port}"):
            conn.request("GET", "/api/info", headers={"Host": host})
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["run"] == "digits-vae"
    finally:
        proc.terminate()
        proc.wait(10)


# -- the molecule view (a chemical VAE run) ------------------------------------------------------
def _moses_test_file():
    root = os.environ.get("VAEKIT_DATA")
    if not root:
        return None
    from vaekit.data.smiles import moses_path

    try:
        path = moses_path("test", root)
    except VaekitError:
        return None
    return path if path.is_file() else None


N_MOL = 300


@pytest.fixture(scope="module")
def mol_run(tmp_path_factory):
    """A tiny SELFIES chemical VAE (12-D latent) trained for a few seconds on 300 MOSES test molecules, as a run."""
    pytest.importorskip("rdkit", reason="the molecule view needs RDKit")
    pytest.importorskip("selfies", reason="the molecule view's test model uses SELFIES")
    if _moses_test_file() is None:
        pytest.skip(
            "needs the MOSES test split under $VAEKIT_DATA (set VAEKIT_DATA to the folder of the staged data sets)"
        )
    from vaekit.chem.dataset import chem_model, scored

    torch.manual_seed(0)
    torch.set_num_threads(1)
    mols = scored("moses", "test", limit=N_MOL, seed=0)
    model = chem_model(
        mols,
        "selfies",
        latent_dim=12,
        gru_hidden=32,
        gru_layers=1,
        conv_channels=(4, 4, 4),
        dense=32,
        prop_hidden=(16,),
        beta=0.1,
    )
    run_dir = tmp_path_factory.mktemp("explore-mol") / "chem-vae"
    fit(
        model,
        model.items(mols.smiles, mols.props),
        TrainConfig(epochs=4, batch_size=32, lr=3e-3, progress=False, tensorboard=False),
        run_dir=run_dir,
        meta={"spec": "moses", "split": "test"},
    )
    return run_dir


@pytest.fixture(scope="module")
def mol_explorer(mol_run):
    return load_run(mol_run, n_molecules=N_MOL)


@pytest.fixture(scope="module")
def mol_client(mol_explorer):
    return local_client(mol_explorer)


def svg_text(url: str) -> str:
    assert url.startswith("data:image/svg+xml;base64,")
    return base64.b64decode(url.split(",", 1)[1]).decode()


def test_molecule_info_colours_the_map_by_logp(mol_client, mol_explorer):
    from vaekit.chem import props
    from vaekit.chem.dataset import scored

    info = mol_client.get("/api/info").json()
    assert info["kind"] == "molecule" and info["latent_dim"] == 12 and info["labels"] is None
    assert info["value_name"] == "logP" and info["properties"] == ["logP", "QED", "SAS"]
    mols = scored("moses", "test", limit=N_MOL, seed=0)
    # every molecule of the subset that fits the vocabulary (built from these molecules: all of them)
    assert info["smiles"] == mols.smiles and info["n"] == len(info["points"]) == len(info["values"]) == N_MOL
    # the colour of each point is the logP RDKit computes for that molecule
    want = [props.logp(s) for s in info["smiles"][:20]]
    assert np.allclose(info["values"][:20], want, atol=1e-9)
    assert np.allclose(info["values"], mols.props["logP"])
    # the map is the codes of those molecules on the two principal axes
    z = mol_explorer.model.encode_smiles(info["smiles"])
    assert torch.allclose(mol_explorer.z, z, atol=1e-5)
    xy = (z - z.mean(0)) @ torch.tensor(info["plane"]).T
    assert np.allclose(info["points"], xy.numpy(), atol=1e-4)
    assert [d["name"] for d in info["directions"]] == [f"PC{i}" for i in range(1, 9)]  # 12-D: principal axes
    assert "NaN" not in mol_client.get("/api/info").text


def test_molecule_decode(mol_client, mol_explorer):
    from vaekit.chem import filters, props

    model = mol_explorer.model
    z = torch.cat([mol_explorer.z[:4], torch.randn(4, 12, generator=torch.Generator().manual_seed(3))])
    r = mol_client.post("/api/decode", json={"z": z.tolist()})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [it["smiles"] for it in items] == model.decode_smiles(z, greedy=True)
    pred = model.predict_properties(z)
    for it, p in zip(items, pred):
        assert np.allclose([it["predicted"][k] for k in ("logP", "QED", "SAS")], p.numpy(), atol=1e-5)
        assert it["valid"] == (props.mol(it["smiles"]) is not None)
        if it["valid"]:
            assert it["canonical"] == props.canonical(it["smiles"])
            assert it["props"]["logP"] == pytest.approx(props.logp(it["smiles"]))
            assert it["props"]["QED"] == pytest.approx(props.qed(it["smiles"]))
            assert it["props"]["SAS"] == pytest.approx(props.sa_score(it["smiles"]))
            assert it["filters"] == (filters.failed(props.mol(it["smiles"])) or "pass")
            svg = svg_text(it["svg"])
            assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<script" not in svg.lower()
    assert any(it["valid"] for it in items)  # SELFIES decode to molecules
    ids = mol_client.post("/api/decode", json={"z": z[:2].tolist(), "format": "array"}).json()["items"]
    assert ids == model.generate(z[:2]).tolist()


def test_molecule_decode_shows_invalid_strings(mol_client, mol_explorer, monkeypatch):
    from vaekit.explore.server import molecule_card

    monkeypatch.setattr(mol_explorer.model.vocab, "decode", lambda ids: ["C1CC(", ""][: len(ids)])
    items = mol_client.post("/api/decode", json={"z": mol_explorer.z[:2].tolist()}).json()["items"]
    for it, s in zip(items, ["C1CC(", ""]):
        assert it["smiles"] == s and it["valid"] is False
        assert it["svg"] is None and it["canonical"] is None and it["props"] is None and it["filters"] is None
        assert set(it["predicted"]) == {"logP", "QED", "SAS"}  # the head still predicts
    assert molecule_card("c1ccccc1")[:2] == (True, "c1ccccc1") and molecule_card("c1ccccc1")[3] == "pass"
    assert molecule_card("CCCC=O")[3].startswith("MCF: formyl group")  # an aldehyde: the page names the alert
    assert molecule_card("C(C)(C)(C)(C)C")[0] is False  # five bonds on a carbon


def test_molecule_interpolate_and_encode(mol_client, mol_explorer):
    model = mol_explorer.model
    res = mol_client.post("/api/interpolate", json={"a": 0, "b": 5, "steps": 6, "method": "spherical"}).json()
    path = torch.tensor(res["z"])
    assert path.shape == (6, 12) and torch.allclose(path[[0, -1]], mol_explorer.z[[0, 5]], atol=1e-5)
    assert [it["smiles"] for it in res["items"]] == model.decode_smiles(path, greedy=True)
    info = mol_client.get("/api/info").json()
    out = mol_client.post("/api/encode", json={"smiles": info["smiles"][:3]}).json()
    assert np.allclose(out["z"], mol_explorer.z[:3].numpy(), atol=1e-5)
    assert np.allclose(out["xy"], info["points"][:3], atol=1e-4)
    x = model.items(info["smiles"][:2], {k: np.zeros(2) for k in ("logP", "QED", "SAS")})
    out = mol_client.post("/api/encode", json={"x": x.tolist()}).json()  # model rows: token ids first
    assert np.allclose(out["z"], mol_explorer.z[:2].numpy(), atol=1e-5)


def mol_bad_cases():
    d = 12
    row = [0.0] * d
    return [
        ("/api/decode", {"z": [[1.0, 2.0, 3.0]]}, 400, f"list of {d} numbers"),
        ("/api/decode", {"z": [row + [0.0]]}, 400, f"list of {d} numbers"),
        ("/api/decode", {"z": [row[:-1] + ["a"]]}, 400, "numbers only"),
        ("/api/decode", {"z": [row[:-1] + [1e39]]}, 400, "too large"),
        ("/api/decode", {"z": [row[:-1] + [3e38]]}, 400, "too large"),
        ("/api/decode", {"z": [row] * (MAX_BATCH + 1)}, 413, "at most"),
        ("/api/decode", {"z": [row], "format": "png"}, 400, "'svg' or 'array'"),
        ("/api/encode", {"smiles": ["C[U]"]}, 400, "not in the vocabulary"),
        ("/api/encode", {"smiles": ["C" * 10000]}, 400, "1 to"),
        ("/api/encode", {"smiles": [3]}, 400, "must be a string"),
        ("/api/encode", {"smiles": []}, 400, "non-empty"),
        ("/api/encode", {"smiles": ["C"] * (MAX_BATCH + 1)}, 413, "at most"),
        ("/api/encode", {"x": [[0.5] * 40]}, 400, "shape"),
        ("/api/encode", {"index": [N_MOL]}, 400, "item index"),
        ("/api/interpolate", {"a": 0, "b": N_MOL}, 400, "item index"),
        ("/api/interpolate", {"za": row, "zb": row[:3]}, 400, f"list of {d} numbers"),
    ]


@pytest.mark.parametrize("case", range(len(mol_bad_cases())))
def test_molecule_bad_input_is_a_4xx_with_a_message(mol_client, case):
    path, body, status, words = mol_bad_cases()[case]
    r = mol_client.post(path, json=body)
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg


def test_molecule_token_ids_are_checked(mol_client, mol_explorer):
    n = mol_explorer.data_shape[0]
    x = mol_explorer.x[:1].clone()
    for bad in (0.5, -1.0, float(len(mol_explorer.model.vocab)), 1e6):
        x[0, 0] = bad
        r = mol_client.post("/api/encode", json={"x": x.tolist()})
        assert r.status_code == 400 and "token ids" in r.json()["error"], (bad, r.text)
    assert x.shape[1] == n
    x = mol_explorer.x[:1].clone()
    x[0, -1] = 3e38  # a property value (after the token ids): finite, but beyond the range
    r = mol_client.post("/api/encode", json={"x": x.tolist()})
    assert r.status_code == 400 and "too large" in r.json()["error"], r.text


def test_smiles_need_a_molecule_run(client):
    r = client.post("/api/encode", json={"smiles": ["CCO"]})
    assert r.status_code == 400 and "molecule run" in r.json()["error"]


def test_molecule_subset_keeps_names_and_colours_together(mol_explorer):
    """A map with fewer points than molecules keeps each molecule's SMILES, colour value and code together."""
    ex = Explorer(
        mol_explorer.model,
        mol_explorer.x,
        max_points=50,
        values=mol_explorer.values,
        value_name="logP",
        smiles=mol_explorer.smiles,
        seed=4,
    )
    assert len(ex.smiles) == len(ex.values) == len(ex.z) == 50 and ex.smiles != mol_explorer.smiles[:50]
    where = {s: i for i, s in enumerate(mol_explorer.smiles)}
    idx = [where[s] for s in ex.smiles]
    assert ex.values == [mol_explorer.values[i] for i in idx]
    assert torch.allclose(ex.z, mol_explorer.z[idx], atol=1e-5)
    with pytest.raises(VaekitError, match="colour values"):
        Explorer(mol_explorer.model, mol_explorer.x[:10], values=[1.0] * 9)


# -- other hosts and origins, security headers ----------------------------------------------------
FOREIGN_HOSTS = [
    "evil.example.com",
    f"evil.example.com:{PORT}",
    "127.0.0.1",
    f"127.0.0.1:{PORT + 1}",
    f"localhost.evil.example.com:{PORT}",
    f"{OWN}.evil.example.com",
    f"{OWN}@evil.example.com",
    "testserver",
    f"0.0.0.0:{PORT}",
    "",
]
REQUESTS = [
    ("GET", "/", None),
    ("GET", "/api/info", None),
    ("GET", "/static/app.js", None),
    ("POST", "/api/decode", {"z": [[0, 0, 0]]}),
    ("POST", "/api/encode", {"index": [0]}),
    ("POST", "/api/interpolate", {"a": 0, "b": 1}),
]


def has_security_headers(r) -> bool:
    return all(r.headers.get(k) == v for k, v in SECURITY_HEADERS.items())


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_other_hosts_are_refused(client, host):
    """DNS rebinding: a page of evil.example.com whose name now points at 127.0.0.1 sends its own name as the
    Host; the app answers nothing but a short plain refusal, whatever the path."""
    for method, path, body in REQUESTS:
        r = client.request(method, path, json=body, headers={"host": host})
        assert r.status_code == 400, (host, path, r.text)
        assert r.headers["content-type"].startswith("text/plain") and has_security_headers(r)
        assert r.text.count("\n") == 1 and f"http://{OWN}/" in r.text
        assert "points" not in r.text and "items" not in r.text


@pytest.mark.parametrize("host", [OWN, f"localhost:{PORT}", f"[::1]:{PORT}", f"LocalHost:{PORT}"])
def test_own_names_are_answered(client, host):
    for method, path, body in REQUESTS:
        r = client.request(method, path, json=body, headers={"host": host})
        assert r.status_code == 200, (host, path, r.text)


def test_allowed_hosts_follow_the_bound_address(explorer):
    assert allowed_hosts("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert allowed_hosts("::1", 8000) == allowed_hosts("127.0.0.1", 8000)
    assert allowed_hosts("box.lan", 8000) == {"box.lan:8000"} | allowed_hosts("127.0.0.1", 8000)
    assert "[fd00::5]:8000" in allowed_hosts("fd00::5", 8000)
    assert {"127.0.0.1", "localhost", "127.0.0.1:80"} <= allowed_hosts("127.0.0.1", 80)  # browsers omit port 80
    assert "127.0.0.1" not in allowed_hosts("127.0.0.1", 8000)
    wide = allowed_hosts("0.0.0.0", 8000)  # every interface: this machine's name too
    assert {"127.0.0.1:8000", f"{socket.gethostname().lower()}:8000"} <= wide
    c = TestClient(create_app(explorer, host="box.lan", port=8000), base_url="http://box.lan:8000")
    assert c.get("/api/info").status_code == 200
    assert c.get("/api/info", headers={"host": "box.lan"}).status_code == 400
    assert c.get("/api/info", headers={"host": "127.0.0.1:8000"}).status_code == 200
    assert c.get("/api/info", headers={"host": OWN}).status_code == 400


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example.com",
        "null",
        f"http://localhost:{PORT}",
        f"https://{OWN}",
        f"http://{OWN}.evil.example.com",
        f"http://{OWN}/",
        "http://127.0.0.1",
    ],
)
@pytest.mark.parametrize("kind", ["text/plain", "application/json"])
def test_cross_origin_posts_are_refused(client, origin, kind):
    """CSRF: a page elsewhere posting to the explorer (a "simple" text/plain POST needs no preflight) gets a 403,
    before the body is read; any Origin but exactly the server's own counts as elsewhere."""
    for path, body in [(p, b) for m, p, b in REQUESTS if m == "POST"]:
        r = client.post(path, content=json.dumps(body), headers={"content-type": kind, "origin": origin})
        assert r.status_code == 403, (origin, path, r.text)
        assert "cross-origin" in r.json()["error"] and has_security_headers(r)


def test_same_origin_posts_and_any_gets_are_answered(client):
    for path, body in [(p, b) for m, p, b in REQUESTS if m == "POST"]:
        assert client.post(path, json=body, headers={"origin": f"http://{OWN}"}).status_code == 200
        assert client.post(path, json=body).status_code == 200  # no Origin: not a browser's cross-site request
    r = client.post(
        "/api/encode", json={"index": [0]}, headers={"host": f"localhost:{PORT}", "origin": f"http://localhost:{PORT}"}
    )
    assert r.status_code == 200
    r = client.get("/api/info", headers={"origin": "http://evil.example.com"})  # reading: the browser's CORS
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers  # keeps the answer from the page


@pytest.mark.parametrize(
    "kind",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/jsonx", "text/json"],
)
def test_posts_must_be_json(client, kind):
    headers = {} if kind is None else {"content-type": kind}
    r = client.post("/api/decode", content=b'{"z": [[0, 0, 0]]}', headers=headers)
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]
    ok = client.post(
        "/api/decode", content=b'{"z": [[0, 0, 0]]}', headers={"content-type": "Application/JSON; charset=utf-8"}
    )
    assert ok.status_code == 200


def test_the_page_sends_json_posts():
    """app.js's only request helper posts with Content-Type: application/json (the server's rule above)."""
    js = (STATIC / "app.js").read_text()
    assert js.count("fetch(") == 1 and 'headers: { "Content-Type": "application/json" }' in js


def test_security_headers_on_every_answer(client):
    answers = [
        client.get("/"),
        client.get("/static/style.css"),
        client.get("/api/info"),
        client.post("/api/decode", json={"z": [[0, 0, 0]]}),
        client.post("/api/decode", json={"z": 1}),
        client.get("/static/nope.js"),
        client.get("/api/decode"),
        client.get("/nope"),
        client.post("/api/decode", content=b"{}", headers={"content-type": "text/plain"}),
        client.post("/api/decode", json={}, headers={"origin": "http://evil.example.com"}),
        client.get("/", headers={"host": "evil.example.com"}),
    ]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 400, 404, 405, 404, 415, 403, 400]
    for r in answers:
        assert has_security_headers(r), (r.request.url, r.headers)
    csp = dict((d.split()[0], d.split()[1:]) for d in SECURITY_HEADERS["Content-Security-Policy"].split("; "))
    assert csp["default-src"] == ["'none'"] and csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["connect-src"] == ["'self'"]
    assert set(csp["img-src"]) == {"'self'", "data:"}  # decoded images and drawings are data: URLs


def test_the_page_has_nothing_the_csp_blocks(client):
    """No inline script, style element, style attribute, event-handler attribute, markup built from strings or
    string code in the page (the CSP allows only the page's own script and style files)."""
    import re

    page = client.get("/").text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts == [(' src="/static/app.js"', "")]
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", page, re.I)
    assert re.findall(r'(?:href|src)="([^"]*)"', page) == ["data:,", "/static/style.css", "/static/app.js"]
    js = client.get("/static/app.js").text
    for banned in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("style',
        "setAttribute('style",
        "cssText",
    ):
        assert banned not in js, banned
    assert not re.search(r"set(Timeout|Interval)\(\s*[\"'`]", js)
    css = client.get("/static/style.css").text
    assert "@import" not in css and "url(" not in css


# -- finite numbers of any size: never a 500 ---------------------------------------------------------
def strict_json(text: str):
    def refuse(c):
        raise AssertionError(f"non-JSON constant {c} in the answer")

    return json.loads(text, parse_constant=refuse)


def test_numbers_at_the_limit_are_decoded(client, explorer):
    lim = client.get("/api/info").json()["limits"]["z"]
    assert lim == explorer.z_limit >= 1e4
    for fmt in ("array", "png"):
        r = client.post("/api/decode", json={"z": [[lim, -lim, lim], [0, 0, 0]], "format": fmt})
        assert r.status_code == 200, r.text
        strict_json(r.text)
    r = client.post("/api/interpolate", json={"za": [lim, lim, lim], "zb": [-lim, -lim, -lim], "steps": 3})
    assert r.status_code == 200 and np.allclose(strict_json(r.text)["z"][1], 0, atol=1e-3)
    x = explorer.x_limit
    r = client.post("/api/encode", json={"x": [[[x] * 8] * 8, [[-x] * 8] * 8]})
    assert r.status_code in (200, 422) and strict_json(r.text)  # 422 only where the encoder overflows


def test_limits_follow_the_data():
    """A run whose data (or codes) hold large numbers takes numbers up to 100x the largest, not just 1e4."""
    torch.manual_seed(0)
    model = build("vae", data_shape=(30,), latent_dim=2, hidden=(16,), likelihood="gaussian", sigma=0.1)
    ex = Explorer(model, 1e3 * torch.randn(20, 30))
    assert ex.x_limit == pytest.approx(100 * float(ex.x.abs().max()))
    assert ex.z_limit == max(1e4, 100 * float(ex.z.abs().max()))
    c = local_client(ex)
    big = (ex.x_limit * 0.99 * torch.ones(1, 30)).tolist()
    assert c.post("/api/encode", json={"x": big}).status_code in (200, 422)
    r = c.post("/api/encode", json={"x": (2 * ex.x_limit * torch.ones(1, 30)).tolist()})
    assert r.status_code == 400 and "too large" in r.json()["error"]


def test_non_finite_model_output_is_a_422(client, explorer, monkeypatch):
    """Should the model overflow, the answer is a 422 with a message, never NaN in JSON nor a 500."""
    monkeypatch.setattr(explorer.model, "generate", lambda z: torch.full((len(z), 8, 8), float("nan")))
    for fmt in ("array", "png"):
        r = client.post("/api/decode", json={"z": [[0, 0, 0]], "format": fmt})
        assert r.status_code == 422 and "not finite" in r.json()["error"]
    assert client.post("/api/interpolate", json={"a": 0, "b": 1}).status_code == 422
    monkeypatch.setattr(explorer.model, "embed", lambda x: torch.full((len(x), 3), float("inf")))
    r = client.post("/api/encode", json={"x": explorer.x[:1].tolist()})
    assert r.status_code == 422 and "not finite" in r.json()["error"]
    # whatever else yields a non-finite number, the answer is never serialised with it
    monkeypatch.setattr(explorer, "to_map", lambda z: torch.full((len(z), 2), float("inf")))
    r = client.post("/api/encode", json={"index": [0]})
    assert r.status_code == 422 and "not finite" in r.json()["error"]


# -- fuzzing the API ----------------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("VAEKIT_FUZZ_CASES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ["z", "za", "zb", "x", "index", "a", "b", "steps", "method", "format", "word", "run", "smiles"]
NUMBERS = st.one_of(
    st.integers(-(10**1000), 10**1000),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3e38, -3e38, 1.7e308, 1e4, 5e-324]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.text(max_size=8),
    st.sampled_from(["png", "array", "svg", "linear", "spherical", "digits-vae"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=12,
)
CODES = st.lists(st.lists(NUMBERS, min_size=3, max_size=3), min_size=1, max_size=3)  # right shape, any numbers
BODIES = st.dictionaries(st.sampled_from(FIELDS), st.one_of(VALUES, CODES, NUMBERS), max_size=5)
POSTS = ["/api/decode", "/api/encode", "/api/interpolate"]


@FUZZ
@given(path=st.sampled_from(POSTS), body=BODIES)
def test_fuzz_api_never_answers_500(client, path, body):
    """Any JSON body (NaN/Infinity literals, integers of a thousand digits, huge finite floats, wrong types and
    shapes): a 200 with strict JSON, or a 4xx with a one-line message."""
    r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code < 500, (body, r.text)
    if r.status_code == 200:
        strict_json(r.text)
    else:
        msg = r.json()["error"]
        assert 400 <= r.status_code < 500 and msg and "\n" not in msg


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64).map(str.encode),
        st.builds(
            lambda n, d: b'{"z": [[' + (b"9" * n) + (b"e%d" % d) + b", 0, 0]]}",
            st.integers(1, 6000),
            st.integers(-400, 400),
        ),
    )
)
def test_fuzz_raw_bodies(client, raw):
    r = client.post("/api/decode", content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500 and (r.status_code == 200) == ("error" not in r.json()), (raw[:80], r.text)


HOST_TEXT = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30)


@FUZZ
@given(
    host=st.one_of(st.sampled_from([OWN, f"localhost:{PORT}", f"[::1]:{PORT}"] + FOREIGN_HOSTS), HOST_TEXT),
    origin=st.one_of(st.none(), st.sampled_from([f"http://{OWN}", "http://evil.example.com", "null"]), HOST_TEXT),
    request=st.sampled_from(REQUESTS),
)
def test_fuzz_hosts_and_origins(client, host, origin, request):
    """Only the server's own names are answered; a POST from any Origin but its own is refused."""
    method, path, body = request
    headers = {"host": host} | ({} if origin is None else {"origin": origin})
    r = client.request(method, path, json=body, headers=headers)
    if host.lower() not in allowed_hosts("127.0.0.1", PORT):
        assert r.status_code == 400 and r.headers["content-type"].startswith("text/plain")
    elif method == "POST" and origin is not None and origin.lower() != f"http://{host.lower()}":
        assert r.status_code == 403
    else:
        assert r.status_code == 200, r.text
    assert has_security_headers(r)
