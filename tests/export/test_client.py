"""`xmodal_keras.export.client` against a served SavedModel, over REST and gRPC.

The server is `serving_harness.ServingHarness`: a TEST DOUBLE FOR THE TF SERVING BINARY
(which cannot be installed here), not for the model — it serves the real exported
SavedModel through `tf.saved_model.load` behind TF Serving's REST path and gRPC
`PredictionService`, on 127.0.0.1.
"""

import io
import re
import socket

import numpy as np
import pytest
import tensorflow as tf
from captioner_runs import shared_tiny_run
from PIL import Image
from serving_harness import ServingHarness

from xmodal_keras.export.client import ServingClient, ServingError, run_predict
from xmodal_keras.export.saved_model_export import export_saved_model

MODEL = "captioner"


def _encoded(array: np.ndarray, format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tiny_shapes_dir, tmp_path_factory):
    """The tiny trained GRU run, exported as TF Serving will load it: saved_models/NAME/1."""
    run, _ = shared_tiny_run(tiny_shapes_dir, tmp_path_factory)
    base_dir = tmp_path_factory.mktemp("saved_models")
    return export_saved_model(run.path, base_dir=base_dir, name=MODEL, beam_width=2)


@pytest.fixture(scope="module")
def server(exported):
    with ServingHarness({MODEL: exported.parent}) as harness:
        yield harness


@pytest.fixture(scope="module")
def direct(exported):
    return tf.saved_model.load(str(exported))


@pytest.fixture(scope="module")
def images(tiny_shapes_dir, tmp_path_factory):
    """Two image files of the dataset (its PNG, and a JPEG copy) and their pixels."""
    pngs = sorted((tiny_shapes_dir / "Images").glob("*.png"))[:2]
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in pngs]
    jpeg = tmp_path_factory.mktemp("images") / "b.jpg"
    jpeg.write_bytes(_encoded(pixels[1], "JPEG"))
    return [pngs[0], jpeg], pixels


def _client(server, use_grpc, **kwargs):
    address = server.grpc_address if use_grpc else server.rest_address
    return ServingClient(address, MODEL, grpc=use_grpc, **kwargs)


def _expected(direct, signature, **inputs):
    outputs = {k: v.numpy() for k, v in direct.signatures[signature](**inputs).items()}
    return [
        {"caption": c.decode(), "tokens": t.tolist(), "score": float(s)}
        for c, t, s in zip(outputs["caption"], outputs["tokens"], outputs["scores"], strict=True)
    ]


def _without_ids(message: str) -> str:
    return re.sub(r"_\d+\b", "_N", message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("use_grpc", [False, True], ids=["rest", "grpc"])
def test_round_trip_equals_the_saved_model_called_directly(server, direct, images, use_grpc):
    paths, pixels = images
    data = [p.read_bytes() for p in paths]
    with _client(server, use_grpc) as client:
        for signature in ("serving_default", "caption_beam"):
            results = client.caption([paths[0], str(paths[1]), data[0]], signature=signature)
            expected = _expected(direct, signature, image_bytes=tf.constant(data + data[:1]))
            assert results == expected
        assert all(isinstance(r["caption"], str) and r["tokens"] for r in results)

        results = client.caption(pixels, signature="caption_pixels")
        assert results == _expected(direct, "caption_pixels", images=tf.constant(np.stack(pixels)))

        embedding = client.embed(paths)
        want = direct.signatures["embed_image"](image_bytes=tf.constant(data))["embedding"]
        assert embedding.dtype == np.float32 and embedding.shape == tuple(want.shape)
        np.testing.assert_array_equal(embedding, want.numpy())


@pytest.mark.parametrize("use_grpc", [False, True], ids=["rest", "grpc"])
def test_a_hostile_image_fails_its_request_and_the_server_goes_on(server, direct, images, use_grpc):
    paths, _ = images
    hostile = b"this is a text file, not an image"
    with pytest.raises(tf.errors.InvalidArgumentError) as direct_error:
        direct.signatures["serving_default"](
            image_bytes=tf.constant([paths[0].read_bytes(), hostile])
        )
    with _client(server, use_grpc) as client:
        with pytest.raises(ServingError) as raised:
            client.caption([paths[0], hostile])
        error = raised.value
        assert error.status == ("INVALID_ARGUMENT" if use_grpc else 400)
        # The same message, up to the ids TF numbers each loaded copy's functions with.
        assert _without_ids(error.server_message) == _without_ids(direct_error.value.message)
        assert "[image 1 of the request] [is not a supported image" in error.server_message
        scheme = "grpc" if use_grpc else "http"
        address = server.grpc_address if use_grpc else server.rest_address
        assert str(error).startswith(
            f"{scheme}://{address}: model 'captioner', signature 'serving_default': "
            f"{error.status}: "
        )
        assert len(client.caption([paths[0]])) == 1  # the next request is served


@pytest.mark.parametrize("use_grpc", [False, True], ids=["rest", "grpc"])
def test_unknown_model_version_and_signature_name_the_servers_message(server, images, use_grpc):
    paths, _ = images
    address = server.grpc_address if use_grpc else server.rest_address
    with pytest.raises(ServingError) as raised:
        ServingClient(address, "nope", grpc=use_grpc).caption(paths[:1])
    assert raised.value.status == ("NOT_FOUND" if use_grpc else 404)
    assert raised.value.server_message == "Servable not found for request: Latest(nope)"

    with pytest.raises(ServingError) as raised:
        ServingClient(address, MODEL, grpc=use_grpc, version=7).caption(paths[:1])
    assert raised.value.server_message == "Servable not found for request: Specific(captioner, 7)"
    assert len(ServingClient(address, MODEL, grpc=use_grpc, version=1).caption(paths[:1])) == 1

    with pytest.raises(ServingError) as raised:
        _client(server, use_grpc).caption(paths[:1], signature="caption_greedy")
    assert raised.value.status == ("FAILED_PRECONDITION" if use_grpc else 400)
    assert raised.value.server_message == 'Serving signature key "caption_greedy" not found.'
    assert raised.value.signature == "caption_greedy"


@pytest.mark.parametrize("use_grpc", [False, True], ids=["rest", "grpc"])
def test_connection_refused_and_timeout_are_clear_errors(images, use_grpc):
    paths, _ = images
    port = _free_port()  # closed again: nothing listens there
    with pytest.raises(ServingError) as raised:
        ServingClient(f"127.0.0.1:{port}", MODEL, grpc=use_grpc, timeout=5).caption(paths[:1])
    scheme = "grpc" if use_grpc else "http"
    assert str(raised.value).startswith(
        f"{scheme}://127.0.0.1:{port}: model 'captioner', signature 'serving_default': "
    )
    if use_grpc:
        assert raised.value.status == "UNAVAILABLE"
        assert "server unavailable, is it running?" in raised.value.server_message
    else:
        assert raised.value.status is None
        assert raised.value.server_message == (
            "connection refused: is the server running on this port?"
        )

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ServingError) as raised:
            ServingClient(address, MODEL, grpc=use_grpc, timeout=0.5).caption(paths[:1])
    assert raised.value.status == ("DEADLINE_EXCEEDED" if use_grpc else None)
    assert raised.value.server_message.startswith("no answer within 0.5 s (timeout)")


def test_run_predict_prints_one_line_per_image(server, direct, images, capsys):
    paths, _ = images
    names = [str(p) for p in paths]
    assert run_predict(server.grpc_address, MODEL, names, grpc=True, signature="caption_beam") == 0
    expected = _expected(direct, "caption_beam",
                         image_bytes=tf.constant([p.read_bytes() for p in paths]))  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{name}: {e['caption']}  [score {e['score']:.4f}]"
        for name, e in zip(names, expected, strict=True)
    ]

    assert run_predict(server.rest_address, "nope", names[:1]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"xmodal: error: http://{server.rest_address}: model 'nope', signature "
        "'serving_default': 404: Servable not found for request: Latest(nope)\n"
    )


def test_bad_arguments_raise_value_errors(images):
    paths, _ = images
    with pytest.raises(ValueError, match="must be 'HOST:PORT'. Received: host_port='localhost'"):
        ServingClient("localhost", MODEL)
    with pytest.raises(ValueError, match="positive number. Received: timeout=0"):
        ServingClient("localhost:8501", MODEL, timeout=0)
    with pytest.raises(ValueError, match="Received: version=0"):
        ServingClient("localhost:8501", MODEL, version=0)
    client = ServingClient("localhost:8501", MODEL)
    assert client.predict_url == "http://localhost:8501/v1/models/captioner:predict"
    versioned = ServingClient("localhost:8501", MODEL, version=3).predict_url
    assert versioned == "http://localhost:8501/v1/models/captioner/versions/3:predict"
    with pytest.raises(ValueError, match=r"must not be empty. Received: images=\[\]"):
        client.caption([])
    with pytest.raises(ValueError, match="a list of image bytes or paths"):
        client.caption(str(paths[0]))
    with pytest.raises(ValueError, match="Each image must be bytes or a path. Received: int 3"):
        client.caption([3])
    with pytest.raises(FileNotFoundError):
        client.caption([paths[0].with_name("missing.png")])
    with pytest.raises(ValueError, match="'caption_pixels' must be uint8 arrays"):
        client.caption([np.zeros((4, 4), np.uint8)], signature="caption_pixels")
    with pytest.raises(ValueError, match="Received: signature='caption_pixels'"):
        run_predict("localhost:8501", MODEL, [str(paths[0])], signature="caption_pixels")
