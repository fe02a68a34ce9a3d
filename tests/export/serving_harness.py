"""A TEST DOUBLE FOR THE TF SERVING BINARY — not for the model.

`tensorflow_model_server` cannot be installed on our machines, so the client tests talk to
this small stand-in instead. It serves the *real exported SavedModel*, loaded with
`tf.saved_model.load` and run through its real signatures, behind the two interfaces TF
Serving offers:

- REST on 127.0.0.1: `POST /v1/models/NAME[/versions/N]:predict` with the row format
  (`{"signature_name": ..., "instances": [...]}`, binary values as `{"b64": ...}`),
  answering `{"predictions": [...]}` (one object per row, or bare values when the signature
  has one output), and errors as `{"error": "..."}`; plus `GET /v1/models/NAME` (status).
- gRPC on 127.0.0.1: `tensorflow.serving.PredictionService/Predict` with
  tensorflow-serving-api's protos.

Errors follow TF Serving's codes: the model's `InvalidArgumentError` (a bad image) ->
HTTP 400 / `INVALID_ARGUMENT` with the model's message; an unknown model or version ->
404 / `NOT_FOUND` ("Servable not found for request: ..."); an unknown signature ->
400 / `FAILED_PRECONDITION` ('Serving signature key "x" not found.'), as TF Serving
does. What it leaves out: batching, model polling and reloading, the columnar
`"inputs"` format, classify/regress, metadata. Real-server behaviour (warm-up file,
`models.config`, op coverage) is tested on the export side, not here.

Example:

    with ServingHarness({"captioner": "saved_models/captioner"}) as server:
        ServingClient(server.rest_address, "captioner").caption([png_bytes])
        ServingClient(server.grpc_address, "captioner", grpc=True).caption([png_bytes])
"""

import base64
import concurrent.futures
import http.server
import json
import pathlib
import re
import threading

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
_STATUS_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?$")


class HarnessError(Exception):
    """A failed request: `code` is the gRPC status, `http_status` what REST answers."""

    _HTTP = {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.FAILED_PRECONDITION: 400,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.INTERNAL: 500,
    }

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = self._HTTP.get(code, 500)


class ServingHarness:
    """Serves SavedModels over TF Serving's REST and gRPC predict APIs on 127.0.0.1.

    Args:
        models: {model name: model base path}, like `models.config`: the base path holds
            numbered version folders (all are loaded; the highest is "latest"), or is
            itself a SavedModel folder (served as version 1).
    """

    def __init__(self, models: dict):
        self.models: dict[str, dict[int, object]] = {}
        for name, base in models.items():
            base = pathlib.Path(base)
            if (base / "saved_model.pb").is_file():
                versions = {1: base}
            else:
                versions = {int(p.name): p for p in base.iterdir() if p.name.isdigit()}
            if not versions:
                raise ValueError(f"No SavedModel version under {base}")
            self.models[name] = {v: tf.saved_model.load(str(p)) for v, p in versions.items()}
        self._http = None
        self._grpc = None

    # -- the model, shared by both front ends -------------------------------------------

    def signature(self, name: str, version: int | None, signature: str):
        """(served version, concrete function) — or `HarnessError`, as TF Serving words it."""
        versions = self.models.get(name)
        spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        if versions is None or (version is not None and version not in versions):
            raise HarnessError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")
        version = max(versions) if version is None else version
        signatures = versions[version].signatures
        if signature not in signatures:
            raise HarnessError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature}" not found.',
            )
        return version, signatures[signature]

    def predict(
        self, name: str, version: int | None, signature: str, inputs: dict[str, np.ndarray]
    ) -> tuple[int, dict[str, np.ndarray]]:
        """(served version, {output name: numpy array}) — or raises `HarnessError`."""
        version, function = self.signature(name, version, signature or "serving_default")
        wanted = function.structured_input_signature[1]
        if set(inputs) != set(wanted):
            raise HarnessError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input keys {sorted(inputs)} do not match the signature's {sorted(wanted)}",
            )
        try:
            tensors = {k: tf.constant(v, dtype=wanted[k].dtype) for k, v in inputs.items()}
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            message = getattr(error, "message", None) or str(error)
            raise HarnessError(grpc.StatusCode.INVALID_ARGUMENT, message) from None
        except tf.errors.OpError as error:
            raise HarnessError(grpc.StatusCode.INTERNAL, error.message) from None
        return version, {k: v.numpy() for k, v in outputs.items()}

    # -- REST ----------------------------------------------------------------------------

    def rest_predict(self, path: str, body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON reply) for a POST to `path`."""
        match = _PREDICT_PATH.match(path)
        if match is None:
            return 404, {"error": f"Malformed request: POST {path}"}
        name, version = match.group(1), match.group(2)
        try:
            request = json.loads(body)
            instances = request["instances"]
            signature = request.get("signature_name") or "serving_default"
            if not isinstance(instances, list) or not instances:
                raise ValueError("'instances' must be a non-empty list")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return 400, {"error": f"JSON Parse error / bad request (harness): {error}"}
        try:
            version = None if version is None else int(version)
            _, function = self.signature(name, version, signature)
            input_names = sorted(function.structured_input_signature[1])
            inputs = _rows_to_columns(instances, input_names)
            _, outputs = self.predict(name, version, signature, inputs)
        except HarnessError as error:
            return error.http_status, {"error": error.message}
        rows = [
            {key: _to_json(key, value[i]) for key, value in outputs.items()}
            for i in range(len(next(iter(outputs.values()))))
        ]
        if len(outputs) == 1:  # one named output: TF Serving drops the name
            (key,) = outputs
            rows = [row[key] for row in rows]
        return 200, {"predictions": rows}

    # -- gRPC ----------------------------------------------------------------------------

    def grpc_predict(self, request: predict_pb2.PredictRequest, context):
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        try:
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            served, outputs = self.predict(spec.name, version, spec.signature_name, inputs)
        except HarnessError as error:
            context.abort(error.code, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = served
        response.model_spec.signature_name = spec.signature_name or "serving_default"
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    # -- start / stop --------------------------------------------------------------------

    def start(self) -> "ServingHarness":
        harness = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._reply(*harness.rest_predict(self.path, body))

            def do_GET(self):  # noqa: N802
                match = _STATUS_PATH.match(self.path)
                if match is None or match.group(1) not in harness.models:
                    self._reply(404, {"error": f"Servable not found for request: {self.path}"})
                    return
                states = [
                    {"version": str(v), "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}}
                    for v in sorted(harness.models[match.group(1)], reverse=True)
                ]  # fmt: skip
                self._reply(200, {"model_version_status": states})

            def _reply(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output quiet
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.rest_address = f"127.0.0.1:{self._http.server_address[1]}"

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):  # noqa: N802 (the proto's name)
                return harness.grpc_predict(request, context)

        self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.grpc_address = f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait()
            self._grpc = None

    def __enter__(self) -> "ServingHarness":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _rows_to_columns(instances: list, input_names: list[str]) -> dict[str, np.ndarray]:
    """TF Serving's row format -> {input name: batch}. A bare value (not an object of named
    inputs) is the value of the signature's only input."""
    if all(isinstance(row, dict) and set(row) != {"b64"} for row in instances):
        names = sorted(instances[0])
        if any(sorted(row) != names for row in instances):
            raise HarnessError(
                grpc.StatusCode.INVALID_ARGUMENT, "instances do not all have the same inputs"
            )
        return {name: _column([row[name] for row in instances]) for name in names}
    if len(input_names) != 1:
        raise HarnessError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"bare instances need a signature with one input, not {input_names}",
        )
    return {input_names[0]: _column(instances)}


def _column(values: list) -> np.ndarray:
    if all(isinstance(v, dict) and set(v) == {"b64"} for v in values):
        return np.array([base64.b64decode(v["b64"]) for v in values], dtype=object)
    if all(isinstance(v, str) for v in values):
        return np.array([v.encode() for v in values], dtype=object)
    return np.array(values)


def _to_json(name: str, value):
    """TF Serving's JSON mapping: `*_bytes` string outputs as {"b64"}, other strings as text."""
    if isinstance(value, bytes):
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_to_json(name, v) for v in value]
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value
