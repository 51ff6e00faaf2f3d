"""``AI``: ``run(model, inputs)`` like Workers AI.

- ``OfflineAI`` (default) needs no model and no network, and says what it is: it describes
  an image from its real pixels (format, size, dominant colours, brightness) with Pillow,
  and answers text prompts with an honest note that no language model is configured.
- ``OpenAICompatibleAI`` sends the same inputs to an OpenAI-compatible chat endpoint (a
  local Ollama serving llava, vLLM, or a hosted API) for real model output.

Inputs follow the seed: ``{"image": bytes or a list of byte values, "prompt": str,
"max_tokens": int}``. Both return ``{"description": str, "model": str, "backend": str}``
for images and ``{"response": str, ...}`` for text.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from collections import Counter
from collections.abc import Sequence


def _image_bytes(inputs: dict) -> bytes | None:
    image = inputs.get("image")
    if image is None:
        return None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (list, tuple)):
        return bytes(image)
    raise ValueError("inputs['image'] must be bytes or a list of byte values")


_NAMED_COLOURS = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "red": (220, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 170, 60),
    "teal": (30, 150, 150),
    "blue": (40, 90, 220),
    "purple": (130, 60, 180),
    "pink": (240, 130, 180),
    "brown": (130, 80, 40),
}


def _colour_name(rgb: Sequence[int]) -> str:
    return min(
        _NAMED_COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, _NAMED_COLOURS[name], strict=True))
    )


class OfflineAI:
    backend = "offline"

    def run(self, model: str, inputs: dict) -> dict:
        if not isinstance(inputs, dict):
            raise ValueError("AI.run(model, inputs) takes a dict of inputs")
        image = _image_bytes(inputs)
        if image is not None:
            return {
                "description": self.describe_image(image, inputs.get("max_tokens")),
                "model": model,
                "backend": self.backend,
            }
        prompt = inputs.get("prompt") or ""
        return {
            "response": f"[offline AI backend: no language model is configured; prompt of {len(prompt)} characters"
            " not answered]",
            "model": model,
            "backend": self.backend,
        }

    @staticmethod
    def describe_image(data: bytes, max_tokens: int | None = None) -> str:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format or "unknown", img.size
                small = img.convert("RGB").resize((48, 48))
        except UnidentifiedImageError:
            raise ValueError(f"the image ({len(data)} bytes) is not in a format Pillow can read") from None
        # Pillow 12 renamed getdata (deprecated, removed in 14) to get_flattened_data.
        pixels = list(small.get_flattened_data() if hasattr(small, "get_flattened_data") else small.getdata())
        names = Counter(_colour_name(p) for p in pixels)
        top = [f"{name} ({100 * n // len(pixels)}%)" for name, n in names.most_common(3)]
        brightness = sum(sum(p) for p in pixels) / (3 * 255 * len(pixels))
        tone = "dark" if brightness < 0.35 else "bright" if brightness > 0.65 else "mid-toned"
        text = (
            f"A {tone} {width}x{height} {fmt} image; dominant colours {', '.join(top)}. "
            "(Described from its pixels by the offline backend, not by a vision model.)"
        )
        if max_tokens:
            words = text.split()
            text = " ".join(words[:max_tokens])
        return text


class OpenAICompatibleAI:
    """Options: ``base_url`` (e.g. http://127.0.0.1:11434/v1 for Ollama), ``api_key``,
    ``model_map`` (Cloudflare model names to the endpoint's, e.g. {"@cf/llava-hf/llava-1.5-7b-hf": "llava"}),
    ``timeout`` (seconds)."""

    backend = "openai-compatible"

    def __init__(
        self, base_url: str, api_key: str = "", model_map: dict[str, str] | None = None, timeout: float = 120
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model_map = model_map or {}
        self.timeout = timeout

    def request_body(self, model: str, inputs: dict) -> dict:
        content = [{"type": "text", "text": inputs.get("prompt") or "Describe this image"}]
        image = _image_bytes(inputs)
        if image is not None:
            url = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
            content.append({"type": "image_url", "image_url": {"url": url}})
        body = {"model": self.model_map.get(model, model), "messages": [{"role": "user", "content": content}]}
        if inputs.get("max_tokens"):
            body["max_tokens"] = inputs["max_tokens"]
        return body

    def run(self, model: str, inputs: dict) -> dict:
        body = self.request_body(model, inputs)
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            answer = json.loads(response.read())
        text = answer["choices"][0]["message"]["content"]
        key = "description" if _image_bytes(inputs) is not None else "response"
        return {key: text, "model": body["model"], "backend": self.backend}
