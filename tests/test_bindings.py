"""Bindings: the bucket, D1-style SQL, AI backends, email, workflow handles."""

import http.server
import json
import threading

import pytest
from django.core import mail
from django.db import IntegrityError

from examples.demo import demo_image
from examples.models import Record, User
from workflows.bindings import env
from workflows.bindings.ai import OfflineAI, OpenAICompatibleAI
from workflows.bindings.sql import Database


def test_the_bucket_puts_gets_lists_and_deletes_objects_under_keys_with_slashes():
    env.BUCKET.put("t/a/one.txt", "hello")
    env.BUCKET.put("t/a/one.txt", "hello again")  # replaces, never renames
    env.BUCKET.put("t/b.json", {"x": 1})
    assert env.BUCKET.get("t/a/one.txt").text() == "hello again"
    assert env.BUCKET.get("t/b.json").json() == {"x": 1}
    assert env.BUCKET.get("t/missing") is None
    listing = env.BUCKET.list(prefix="t/")
    assert [o["key"] for o in listing["objects"]] == ["t/a/one.txt", "t/b.json"] and listing["truncated"] is False
    assert listing["objects"][0]["size"] == 11 and listing["objects"][0]["uploaded"] is not None
    env.BUCKET.delete("t/a/one.txt")
    assert env.BUCKET.get("t/a/one.txt") is None


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", 5])
def test_bucket_keys_that_could_escape_are_refused(key):
    with pytest.raises(ValueError, match="invalid bucket key"):
        env.BUCKET.get(key)


def test_sql_parameters_are_bound_never_interpolated(db):
    User.objects.create(id="u1", email="a@example.com", subscription_status="active")
    database = Database()
    hostile = "u1' OR '1'='1"
    assert database.prepare("SELECT * FROM users WHERE id = ?").bind(hostile).first() is None
    assert database.prepare("SELECT subscription_status FROM users WHERE id = ?").bind("u1").first() == {
        "subscription_status": "active"
    }
    assert database.prepare("SELECT email FROM users WHERE id = ?").bind("u1").first("email") == "a@example.com"
    # A '?' or '%' inside a string literal is text, not a placeholder.
    row = database.prepare("SELECT '?' AS q, '100%' AS p, id FROM users WHERE id = ?").bind("u1").first()
    assert row == {"q": "?", "p": "100%", "id": "u1"}


def test_bind_checks_the_number_of_values(db):
    with pytest.raises(ValueError, match="2 '\\?' placeholder\\(s\\) but bind\\(\\) got 1"):
        Database().prepare("INSERT INTO records VALUES (?, ?)").bind(1)


def test_a_batch_is_one_transaction(db):
    database = Database()
    insert = database.prepare("INSERT INTO records VALUES (?, ?)")
    results = database.batch(
        [insert.bind(1, "a"), insert.bind(2, "b"), database.prepare("SELECT COUNT(*) AS n FROM records")]
    )
    assert results[2]["results"] == [{"n": 2}]
    with pytest.raises(IntegrityError):
        database.batch([insert.bind(3, "c"), insert.bind(1, "duplicate key")])
    assert sorted(Record.objects.values_list("id", flat=True)) == [1, 2]


def test_the_offline_ai_describes_an_image_from_its_pixels_and_says_what_it_is():
    answer = OfflineAI().run("@cf/llava-hf/llava-1.5-7b-hf", {"image": list(demo_image()), "prompt": "Describe"})
    assert answer["description"].startswith("A mid-toned 320x200 PNG image; dominant colours orange (56%)")
    assert "orange" in answer["description"] and "not by a vision model" in answer["description"]
    assert "no language model is configured" in OfflineAI().run("@cf/meta/llama", {"prompt": "hi"})["response"]
    with pytest.raises(ValueError, match="not in a format Pillow can read"):
        OfflineAI().run("m", {"image": b"not an image"})


def test_the_openai_compatible_backend_sends_the_image_and_returns_the_models_answer():
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen["auth"] = self.headers.get("Authorization")
            body = json.dumps({"choices": [{"message": {"content": "A sunset over the sea."}}]}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    ai = OpenAICompatibleAI(
        f"http://127.0.0.1:{server.server_address[1]}/v1",
        api_key="k",
        model_map={"@cf/llava-hf/llava-1.5-7b-hf": "llava"},
    )
    answer = ai.run(
        "@cf/llava-hf/llava-1.5-7b-hf", {"image": demo_image(), "prompt": "Describe this image", "max_tokens": 50}
    )
    server.server_close()
    assert answer == {"description": "A sunset over the sea.", "model": "llava", "backend": "openai-compatible"}
    assert seen["path"] == "/v1/chat/completions" and seen["auth"] == "Bearer k"
    content = seen["body"]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "Describe this image"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,") and seen["body"]["max_tokens"] == 50


def test_email_goes_through_djangos_mail_framework(settings):
    assert env.EMAIL.send(to="x@example.com", subject="Welcome!")["sent"] == 1
    assert [(m.to, m.subject) for m in mail.outbox] == [(["x@example.com"], "Welcome!")]
    with pytest.raises(ValueError, match="invalid recipient"):
        env.EMAIL.send(to="nobody", subject="x")


def test_an_unknown_binding_names_the_configured_ones():
    with pytest.raises(AttributeError, match="no binding named 'QUEUE'.*BUCKET"):
        getattr(env, "QUEUE")  # noqa: B009 (attribute access is what is tested)
