"""The explorer's API as an installed vaekit serves it: `python explore_api.py RUN` starts `vaekit explore RUN`
(the console script next to this interpreter) on a free port and checks the page, its packaged JavaScript and
stylesheet, and each API call. Standard library only, so that it runs in a venv holding just the wheel."""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import vaekit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(run: str) -> None:
    where = Path(vaekit.__file__).resolve()
    assert "site-packages" in where.parts, f"vaekit comes from {where}, not from an installed wheel"
    port = free_port()
    console = Path(sys.executable).with_name("vaekit")
    proc = subprocess.Popen([str(console), "explore", run, "--no-browser", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def ask(method: str, path: str, body=None) -> tuple[int, str, bytes]:
        headers = {} if body is None else {"Content-Type": "application/json"}
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()

    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                sys.exit(f"vaekit explore exited with status {proc.returncode}:\n{proc.stdout.read()}")
            try:
                status, _, text = ask("GET", "/api/info")
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("vaekit explore did not answer within 120 s")
                conn.close()
                time.sleep(0.5)
        info = json.loads(text)
        assert status == 200 and info["run"] == Path(run).name and info["kind"] == "image", info
        d, n = info["latent_dim"], info["n"]
        assert n > 1 and len(info["points"]) == n, "the map has no points"

        status, kind, page = ask("GET", "/")
        assert status == 200 and kind.startswith("text/html") and b"/static/app.js" in page, (status, kind)
        for name, want in (("app.js", "javascript"), ("style.css", "css")):      # package data of the wheel
            status, kind, body = ask("GET", f"/static/{name}")
            assert status == 200 and want in kind and len(body) > 500, (name, status, kind, len(body))

        status, _, body = ask("POST", "/api/decode", {"z": [[0.0] * d, [1.0] * d]})
        items = json.loads(body)["items"]
        assert status == 200 and len(items) == 2 and items[0].startswith("data:image/png;base64,"), body[:200]
        assert items[0] != items[1], "two codes decode to the same image"
        status, _, body = ask("POST", "/api/encode", {"index": [0, 1]})
        assert status == 200 and len(json.loads(body)["z"]) == 2, body[:200]
        status, _, body = ask("POST", "/api/interpolate", {"a": 0, "b": 1, "steps": 5})
        assert status == 200 and len(json.loads(body)["items"]) == 5, body[:200]
        status, _, body = ask("POST", "/api/decode", {"z": [[0.0] * (d + 1)]})
        assert status == 400 and "error" in json.loads(body), body[:200]
        print(f"explorer API of the installed vaekit ({where.parent}): page, static files, "
              f"decode, encode, interpolate answered on {n} items")
    finally:
        conn.close()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main(sys.argv[1])
