"""Property-based API check: schemathesis generates requests from the OpenAPI spec.

Every generated request must get a documented status with a body matching the
spec, and never a server error. Real PNG/JPEG bytes are registered for the
image media types so that valid requests reach the model, not only the
decoder's error path.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from modnet_matting.inference import Predictor, TorchBackend  # noqa: E402
from modnet_matting.server import create_app  # noqa: E402
from modnet_matting.weights import load_weights  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@st.composite
def encoded_images(draw: st.DrawFn, fmt: str) -> bytes:
    """Small random photos, encoded; sometimes with trailing garbage or cut short."""
    height, width = draw(st.integers(8, 48)), draw(st.integers(8, 48))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "none", "truncate"]))
    return data[: len(data) // 2] if damage == "truncate" else data


schemathesis.openapi.media_type("image/png", encoded_images("PNG"))
schemathesis.openapi.media_type("image/jpeg", encoded_images("JPEG"))


@pytest.fixture(scope="module")
def api_schema(random_weights):
    model, config = load_weights(random_weights)
    small = replace(config, preprocess=replace(config.preprocess, reference_size=64))
    app = create_app(predictor=Predictor(TorchBackend(model, "cpu"), small), max_upload_bytes=1_000_000)
    # Images the schema allows can still be refused for their content (413 too many pixels, 415 not an
    # image, 422 damaged or two backgrounds): those statuses are documented answers to valid requests.
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": ["2XX", "413", "415", "422"]}}}
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_spec(case):
    case.call_and_validate()
