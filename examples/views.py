"""The data pipeline's demo source: JSON served by the project itself, so the demo works offline.

URLs are signed (only the project can make them), so the endpoint is not an open door; a
``fail_first`` count makes the first requests fail, to show the extract step's retries.
"""

from django.core import signing
from django.core.cache import cache
from django.http import Http404, JsonResponse

SALT = "examples.source"
MAX_ROWS = 10_000


def source_url(base: str, rows: int = 250, fail_first: int = 0, name: str = "demo") -> str:
    if not 0 <= rows <= MAX_ROWS:
        raise ValueError(f"a demo source serves 0 to {MAX_ROWS:,} rows, not {rows:,}")
    token = signing.dumps({"rows": rows, "fail_first": fail_first, "name": name}, salt=SALT)
    return f"{base.rstrip('/')}/examples/source/{token}.json"


def source(request, token):
    try:
        spec = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        raise Http404("unknown source") from None
    if spec["fail_first"]:
        key = f"examples-source-{spec['name']}"
        served = cache.get_or_set(key, 0)
        cache.set(key, served + 1, None)
        if served < spec["fail_first"]:
            return JsonResponse({"error": "the source is warming up"}, status=503)
    count = min(int(spec.get("rows", 0)), MAX_ROWS)  # signed, and capped all the same
    rows = [{"id": i, "name": f"Item {i}", "value": i * 7 % 100, "Tag": "DEMO"} for i in range(1, count + 1)]
    return JsonResponse(rows, safe=False)
