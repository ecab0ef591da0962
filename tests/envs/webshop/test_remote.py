"""The HTTP adapter against a tiny fake WebShop server on 127.0.0.1 (no external network)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

import envs
from envs.webshop import RemoteWebShopEnv


class FakeWebShop:
    """One environment: search page -> results -> item -> buy (score 1.0 for item b1, else 0.5)."""

    def __init__(self) -> None:
        self.page = "search"
        self.requests = []

    def available(self):
        return {
            "search": {"has_search_bar": True, "clickables": ["search"]},
            "results": {"has_search_bar": False, "clickables": ["back to search", "b1", "b2"]},
            "item": {"has_search_bar": False, "clickables": ["back to search", "< prev", "buy now"]},
        }[self.page]

    def step(self, action):
        if action.startswith("search["):
            self.page = "results"
            state = "Back to Search [SEP] Page 1 (Total results: 2) [SEP] b1 [SEP] b2"
            return {"state": state, "reward": 0.0, "done": False, "info": None}
        if action in ("click[b1]", "click[b2]"):
            self.page, self.item = "item", action[6:8]
            return {"state": "Back to Search [SEP] < Prev [SEP] Buy Now", "reward": 0.0, "done": False, "info": None}
        if action == "click[buy now]":
            return {"state": "Thank you", "reward": 1.0 if self.item == "b1" else 0.5, "done": True, "info": None}
        return {"state": "unchanged", "reward": 0.0, "done": False, "info": None}


@pytest.fixture
def server():
    shop = FakeWebShop()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, payload):
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            shop.requests.append(("GET", url.path, parse_qs(url.query)))
            if url.path == "/available_actions":
                self._send(shop.available())
            elif url.path == "/instruction_text":
                self._send("i need a thing, and price lower than 10.00 dollars")
            else:
                self.send_error(404)

        def do_POST(self):
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            shop.requests.append(("POST", self.path, payload))
            if self.path == "/create":
                self._send(7)
            elif self.path == "/reset":
                shop.page = "search"
                self._send(["WebShop [SEP] Instruction: [SEP] i need a thing [SEP] Search", None])
            elif self.path == "/step":
                self._send(shop.step(payload["action"]))
            elif self.path == "/close":
                self._send({"closed": True})
            else:
                self.send_error(404)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", shop
    httpd.shutdown()
    httpd.server_close()


def test_remote_episode_success(server):
    url, shop = server
    env = envs.make("webshop", server_url=url, split="test")
    assert isinstance(env, RemoteWebShopEnv)
    obs, info = env.reset(12)
    assert obs.startswith("WebShop [SEP] Instruction:")
    assert info["admissible_commands"] == ["search[<your query>]"] and info["task"] == 12
    assert ("POST", "/reset", {"env_idx": 7, "session_id": 12}) in shop.requests
    _, _, _, info = env.step("search[thing]")
    assert info["admissible_commands"] == ["click[back to search]", "click[b1]", "click[b2]"]
    env.step("click[b1]")
    _, reward, done, info = env.step("click[buy now]")
    assert (reward, done, info["won"], info["score"]) == (10.0, True, True, 1.0)
    env.close()
    assert shop.requests[-1] == ("POST", "/close", {"env_idx": 7})


def test_remote_partial_score_invalid_action_and_max_steps(server):
    url, _ = server
    env = RemoteWebShopEnv(url, split="test", max_steps=3)
    env.reset(0)
    _, _, _, info = env.step("click[nothing]")
    assert info["invalid"] is True
    env.step("search[thing]")
    _, reward, done, info = env.step("click[b2]")
    assert done and info["truncated"] and reward == 0.0
    env.reset(1)
    env.step("search[thing]")
    env.step("click[b2]")
    _, reward, done, info = env.step("click[buy now]")
    assert (reward, done, info["won"], info["score"]) == (0.0, True, False, 0.5)


def test_remote_tasks():
    assert RemoteWebShopEnv("http://127.0.0.1:9", split="test").tasks() == list(range(500))
    assert RemoteWebShopEnv("http://127.0.0.1:9", split="train", num_goals=600).tasks() == list(range(500, 600))
    with pytest.raises(ValueError):
        RemoteWebShopEnv("http://127.0.0.1:9", split="train").tasks()
