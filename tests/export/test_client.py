"""`xmodal_keras.export.client` against a served SavedModel, over REST and gRPC.

The server is `serving_harness.ServingHarness`: a TEST DOUBLE FOR THE TF SERVING BINARY
(which cannot be installed here), not for the model — it serves the real exported
SavedModel through `tf.saved_model.load` behind TF Serving's REST path and gRPC
`PredictionService`, on 127.0.0.1.
"""

import base64
import concurrent.futures
import contextlib
import http.client
import io
import json
import pathlib
import re
import shutil
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from captioner_runs import shared_saved_model
from PIL import Image
from serving_harness import ServingHarness
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from xmodal_keras.cli import main as cli_main
from xmodal_keras.export.client import ServingClient, ServingError, run_predict

MODEL = "captioner"


def _encoded(array: np.ndarray, format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tiny_shapes_dir, tmp_path_factory):
    """The tiny trained GRU run, exported as TF Serving will load it: saved_models/NAME/1
    (the session's `xmodal export` of it, shared with test_saved_model_export.py)."""
    return shared_saved_model(tiny_shapes_dir, tmp_path_factory)


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


def _corrupt_png(data: bytes) -> bytes:
    """A whole PNG (every chunk up to IEND) whose compressed pixel data is zeroed: the
    header checks pass it, the decoder fails on it without naming it."""
    broken = bytearray(data)
    start = data.index(b"IDAT") + 10
    broken[start : start + 40] = bytes(40)
    return bytes(broken)


@pytest.mark.parametrize("use_grpc", [False, True], ids=["rest", "grpc"])
def test_a_corrupt_image_in_a_batch_is_named_by_the_client(server, direct, images, use_grpc):
    paths, _ = images
    good = paths[0].read_bytes()
    corrupt = _corrupt_png(good)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Invalid PNG data") as direct_error:
        direct.signatures["serving_default"](image_bytes=tf.constant([good, good, corrupt]))
    assert "of the request" not in direct_error.value.message  # the graph cannot name it
    with _client(server, use_grpc) as client:
        with pytest.raises(ServingError) as raised:
            client.caption([good, good, corrupt, good])
        error = raised.value
        assert error.status == ("INVALID_ARGUMENT" if use_grpc else 400)
        assert error.server_message.startswith(
            "image 2 of the request (0-based) could not be decoded: "
        )
        assert "Invalid PNG data" in error.server_message
        assert len(client.caption([good, good])) == 2


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


DRIP_REPLY = (
    b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"predictions": [[1.0, 2.0, 3.0, 4.0]]}\n'
)


@pytest.fixture
def dripping_server():
    """A TCP server that answers every connection one byte every 0.25 s (for 6 s at most,
    so that a client without a total deadline fails the test instead of hanging it);
    `dripping_server(skip)` sends the first `skip` bytes at once."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def drip(conn, skip):
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(DRIP_REPLY[:skip])
                for i in range(skip, len(DRIP_REPLY)):
                    if stop.wait(0.25) or i - skip >= 24:
                        return
                    conn.sendall(DRIP_REPLY[i : i + 1])
            except OSError:  # the client gave up and closed: what a deadline does
                return

    def serve(skip):
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=drip, args=(conn, skip), daemon=True).start()

    servers = []

    def start(skip=0):
        servers.append(threading.Thread(target=serve, args=(skip,), daemon=True))
        servers[-1].start()
        return f"127.0.0.1:{listener.getsockname()[1]}"

    yield start
    stop.set()
    for thread in servers:
        thread.join()
    listener.close()


@pytest.mark.parametrize("skip", [0, len(DRIP_REPLY) - 30], ids=["headers", "body"])
def test_rest_timeout_is_a_deadline_for_the_whole_request(dripping_server, images, skip):
    paths, _ = images
    client = ServingClient(dripping_server(skip), MODEL, timeout=1)
    started = time.monotonic()
    with pytest.raises(ServingError) as raised:
        client.embed(paths[:1])
    assert time.monotonic() - started < 1.6
    assert raised.value.status is None
    assert raised.value.server_message == "no answer within 1 s (timeout)"


class _SlowServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, release: threading.Event):
        self.release = release

    def Predict(self, request, context):  # noqa: N802 (the proto's name)
        self.release.wait(30)
        return predict_pb2.PredictResponse()


def test_grpc_timeout_is_a_deadline_for_the_whole_request(dripping_server, images):
    paths, _ = images
    release = threading.Event()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _SlowServicer(release), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        for address in (f"127.0.0.1:{port}", dripping_server()):
            with ServingClient(address, MODEL, grpc=True, timeout=1) as client:
                started = time.monotonic()
                with pytest.raises(ServingError) as raised:
                    client.embed(paths[:1])
                assert time.monotonic() - started < 1.6, raised.value
        assert raised.value.status in ("DEADLINE_EXCEEDED", "UNAVAILABLE")
    finally:
        release.set()
        server.stop(grace=None).wait()


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


@pytest.fixture(scope="module")
def two_versions(exported, tmp_path_factory):
    """saved_models/ with the export as versions 1 and 2 of the model."""
    base = tmp_path_factory.mktemp("two_versions")
    for version in ("1", "2"):
        shutil.copytree(exported, base / MODEL / version)
    return base


def test_the_stand_in_serves_only_the_latest_version_by_default(two_versions, images):
    paths, _ = images
    with ServingHarness({MODEL: two_versions / MODEL}) as harness:
        assert sorted(harness.models[MODEL]) == [2]
        for use_grpc in (False, True):
            assert len(_client(harness, use_grpc).caption(paths[:1])) == 1
            with pytest.raises(ServingError) as raised:
                _client(harness, use_grpc, version=1).caption(paths[:1])
            assert raised.value.status == ("NOT_FOUND" if use_grpc else 404)
            assert raised.value.server_message == (
                "Servable not found for request: Specific(captioner, 1)"
            )


@pytest.fixture(scope="module")
def configured(two_versions):
    """The stand-in started from what `xmodal serve-config` wrote: both versions, labels,
    batching of at most 2 rows, and a 1 MiB request cap."""
    printed = io.StringIO()
    args = ["serve-config", str(two_versions), "--version-policy", "all", "--batching"]
    args += ["--label", "stable=1", "--label", f"{MODEL}:canary=2", "--max-batch-size", "2"]
    with contextlib.redirect_stdout(printed):
        assert cli_main([*args, "--monitoring"]) == 0
    config = two_versions / "models.config"
    with pytest.raises(ValueError, match="which is not currently available for inference"):
        ServingHarness(config)  # as TF Serving refuses to start without the flag
    harness = ServingHarness(
        config,
        allow_version_labels_for_unavailable_models=True,
        batching_parameters=two_versions / "batching_parameters.txt",
        max_request_bytes=1 << 20,
    )
    with harness:
        yield harness, printed.getvalue()


def test_serve_config_policy_labels_and_flags_as_tf_serving_reads_them(configured, images):
    harness, printed = configured
    assert sorted(harness.models[MODEL]) == [1, 2]
    assert harness.labels[MODEL] == {"stable": 1, "canary": 2}
    base = pathlib.Path(printed.split("wrote ")[1].split()[0]).parent
    assert printed.splitlines()[-1] == (
        "serve: tensorflow_model_server --port=8500 --rest_api_port=8501 "
        f"--model_config_file={base / 'models.config'} "
        "--allow_version_labels_for_unavailable_models=true --enable_batching "
        f"--batching_parameters_file={base / 'batching_parameters.txt'} "
        f"--monitoring_config_file={base / 'monitoring.config'}"
    )
    assert 'path: "/monitoring/prometheus/metrics"' in (base / "monitoring.config").read_text()
    paths, _ = images
    for use_grpc in (False, True):
        for label in ("stable", "canary"):
            assert len(_client(harness, use_grpc, version_label=label).caption(paths[:1])) == 1
        assert len(_client(harness, use_grpc, version=1).caption(paths[:1])) == 1
        with pytest.raises(ServingError) as raised:
            _client(harness, use_grpc, version_label="nope").caption(paths[:1])
        assert raised.value.status == ("INVALID_ARGUMENT" if use_grpc else 400)
        assert raised.value.server_message == "Unrecognized servable version label: nope"


def _post(address: str, path: str, body: bytes, headers: dict | None = None):
    connection = http.client.HTTPConnection(*address.split(":"), timeout=10)
    try:
        connection.putrequest("POST", path)
        for key, value in (headers or {"Content-Length": str(len(body))}).items():
            connection.putheader(key, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_bad_rest_requests_get_a_status_and_a_json_error(configured, images):
    harness, _ = configured
    address, path = harness.rest_address, f"/v1/models/{MODEL}:predict"
    image = base64.b64encode(images[0][0].read_bytes()).decode()

    def body(rows):
        return json.dumps({"instances": rows}).encode()

    assert _post(address, path, body([{"image_bytes": {"b64": "not base64!"}}])) == (
        400,
        {"error": "Unable to base64 decode"},
    )
    assert _post(address, path, b"", {"Content-Length": "ten"}) == (
        400,
        {"error": "Bad Content-Length header: 'ten'"},
    )
    status, reply = _post(address, path, b"{", {"Content-Length": "1"})
    assert status == 400 and reply["error"].startswith("JSON Parse error: ")
    status, reply = _post(address, path, b"", {"Content-Length": str(2 << 20)})  # refused unread
    assert status == 413 and "over the 1048576 limit" in reply["error"]
    three = body([{"image_bytes": {"b64": image}}] * 3)
    assert _post(address, path, three) == (
        400,
        {"error": "Task size 3 is larger than maximum input batch size 2"},
    )
    status, reply = _post(address, path, body([{"image_bytes": {"b64": image}}]))
    assert status == 200 and len(reply["predictions"]) == 1


def test_bad_grpc_requests_get_tf_servings_status(configured, images):
    harness, _ = configured
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(harness.grpc_address)
    )

    def predict(tensor):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["image_bytes"].CopyFrom(tensor)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=10)
        return raised.value.code(), raised.value.details()

    assert predict(tf.make_tensor_proto([1.0, 2.0])) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be string but float32 is provided",
    )
    data = images[0][0].read_bytes()
    assert predict(tf.make_tensor_proto([data] * 3)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Task size 3 is larger than maximum input batch size 2",
    )
    code, _ = predict(tf.make_tensor_proto([b"x" * (2 << 20)]))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_bad_arguments_raise_value_errors(images):
    paths, _ = images
    with pytest.raises(ValueError, match="must be 'HOST:PORT'. Received: host_port='localhost'"):
        ServingClient("localhost", MODEL)
    with pytest.raises(ValueError, match="positive number. Received: timeout=0"):
        ServingClient("localhost:8501", MODEL, timeout=0)
    with pytest.raises(ValueError, match="Received: version=0"):
        ServingClient("localhost:8501", MODEL, version=0)
    with pytest.raises(ValueError, match="not given with `version`"):
        ServingClient("localhost:8501", MODEL, version=1, version_label="stable")
    labelled = ServingClient("localhost:8501", MODEL, version_label="canary").predict_url
    assert labelled == "http://localhost:8501/v1/models/captioner/labels/canary:predict"
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
