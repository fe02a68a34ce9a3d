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

It is as strict as TF Serving where a lenient stand-in would let a client test pass
that a real server fails:

- it reads `models.config` (`xmodal serve-config`): each model serves the versions its
  `model_version_policy` picks (by default only the latest), and `version_labels`
  (`/labels/L` in REST, `version_label` in gRPC) need
  `allow_version_labels_for_unavailable_models`, as at a real server's start;
- gRPC tensors must have the signature's dtypes ("Expects arg[0] to be string but float
  is provided"); REST values are converted from JSON to them, or refused;
- with batching parameters, a request of more rows than `max_batch_size` fails ("Task
  size N is larger than maximum input batch size M"); bodies are capped
  (`max_request_bytes`).

Errors follow TF Serving's codes, REST ones as `{"error": "..."}`: the model's
`InvalidArgumentError` (a bad image), bad JSON, bad base64 ("Unable to base64 decode"),
an unknown label ("Unrecognized servable version label: L") -> HTTP 400 /
`INVALID_ARGUMENT`; an unknown model or unserved version -> 404 / `NOT_FOUND`
("Servable not found for request: ..."); an unknown signature -> 400 /
`FAILED_PRECONDITION` ('Serving signature key "x" not found.'); a bad `Content-Length`
-> 400, a body over the cap -> 413. What it leaves out: batching itself, model polling
and reloading, the columnar `"inputs"` format, classify/regress, metadata, monitoring.

Example:

    with ServingHarness("saved_models/models.config") as server:
        ServingClient(server.rest_address, "captioner").caption([png_bytes])
        ServingClient(server.grpc_address, "captioner", grpc=True).caption([png_bytes])
"""

import base64
import binascii
import concurrent.futures
import http.server
import json
import pathlib
import re
import threading

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:predict$")
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
        models: a `models.config` file (what `xmodal serve-config` writes), or
            {model name: model base path} (a config without version policy or labels).
            As in TF Serving, each model serves the versions its `model_version_policy`
            names among the numbered folders of its base path: by default only the latest.
        allow_version_labels_for_unavailable_models: TF Serving's flag. Without it a
            server refuses to start with `version_labels` in its config (no version is
            available yet when the config is read); so does this one (`ValueError`).
        batching_parameters: a `batching_parameters.txt`; with it (TF Serving's
            `--enable_batching`) a request of more rows than its `max_batch_size` fails.
        max_request_bytes: the largest request body: a larger REST body gets a 413, a
            larger gRPC message `RESOURCE_EXHAUSTED`. Defaults to 64 MiB.
    """

    def __init__(
        self,
        models,
        *,
        allow_version_labels_for_unavailable_models: bool = False,
        batching_parameters=None,
        max_request_bytes: int = 64 << 20,
    ):
        if isinstance(models, dict):
            config = model_server_config_pb2.ModelServerConfig()
            for name, base in models.items():
                entry = config.model_config_list.config.add(name=name, base_path=str(base))
                entry.model_platform = "tensorflow"
        else:
            config = text_format.Parse(
                pathlib.Path(models).read_text(), model_server_config_pb2.ModelServerConfig()
            )
        self.models: dict[str, dict[int, object]] = {}
        self.labels: dict[str, dict[str, int]] = {}
        for entry in config.model_config_list.config:
            versions = served_versions(entry)
            if not versions:
                raise ValueError(f"No version of {entry.name} to serve under {entry.base_path}")
            self.models[entry.name] = {v: tf.saved_model.load(str(p)) for v, p in versions.items()}
            if entry.version_labels and not allow_version_labels_for_unavailable_models:
                label, version = next(iter(entry.version_labels.items()))
                raise ValueError(
                    "Failed to start server. Error: FAILED_PRECONDITION: Request to assign "
                    f"label to version {version} of model {entry.name}, which is not "
                    "currently available for inference"
                )
            self.labels[entry.name] = dict(entry.version_labels)
        self.max_batch_size = None
        if batching_parameters is not None:
            text = pathlib.Path(batching_parameters).read_text()
            self.max_batch_size = int(re.search(r"max_batch_size\s*{\s*value:\s*(\d+)", text)[1])
        self.max_request_bytes = max_request_bytes
        self._http = None
        self._grpc = None

    # -- the model, shared by both front ends -------------------------------------------

    def resolve(self, name: str, version: int | None, label: str | None) -> int:
        """The served version a request names, or `HarnessError` as TF Serving words it."""
        versions = self.models.get(name)
        if label:
            if versions is None or label not in self.labels[name]:
                raise HarnessError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unrecognized servable version label: {label}",
                )
            version = self.labels[name][label]
        spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        if versions is None or (version is not None and version not in versions):
            raise HarnessError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")
        return max(versions) if version is None else version

    def signature(self, name: str, version: int | None, signature: str, label: str | None = None):
        """(served version, concrete function) — or `HarnessError`, as TF Serving words it."""
        version = self.resolve(name, version, label)
        signatures = self.models[name][version].signatures
        if signature not in signatures:
            raise HarnessError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature}" not found.',
            )
        return version, signatures[signature]

    def predict(
        self,
        name: str,
        version: int | None,
        signature: str,
        inputs: dict[str, np.ndarray],
        label: str | None = None,
    ) -> tuple[int, dict[str, np.ndarray]]:
        """(served version, {output name: numpy array}) — or raises `HarnessError`.
        `inputs` must have the signature's dtypes (gRPC is not converted, as in TF Serving;
        REST values are converted to them from JSON first)."""
        version, function = self.signature(name, version, signature or "serving_default", label)
        wanted = function.structured_input_signature[1]
        if set(inputs) != set(wanted):
            raise HarnessError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input keys {sorted(inputs)} do not match the signature's {sorted(wanted)}",
            )
        for index, key in enumerate(sorted(wanted)):
            given = tf.as_dtype(inputs[key].dtype if inputs[key].dtype != object else tf.string)
            if given != wanted[key].dtype:
                raise HarnessError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Expects arg[{index}] to be {wanted[key].dtype.name} but {given.name} "
                    "is provided",
                )
        rows = {len(value) for value in inputs.values()}
        if self.max_batch_size is not None and max(rows) > self.max_batch_size:
            raise HarnessError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Task size {max(rows)} is larger than maximum input batch size "
                f"{self.max_batch_size}",
            )
        try:
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
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
        name, version, label = match.group(1), match.group(2), match.group(3)
        try:
            request = json.loads(body)
        except ValueError as error:
            return 400, {"error": f"JSON Parse error: {error}"}
        if not isinstance(request, dict) or not isinstance(request.get("instances"), list):
            return 400, {"error": "Missing 'inputs' or 'instances' key"}
        signature = request.get("signature_name", "serving_default")
        if not isinstance(signature, str):
            return 400, {
                "error": f"JSON Value: {json.dumps(signature)} not formatted correctly. "
                "'signature_name' key must be a string value."
            }
        try:
            version = None if version is None else int(version)
            _, function = self.signature(name, version, signature, label)
            wanted = function.structured_input_signature[1]
            inputs = _rows_to_columns(request["instances"], wanted)
            _, outputs = self.predict(name, version, signature, inputs, label)
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
        label = spec.version_label if spec.HasField("version_label") else None
        try:
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            served, outputs = self.predict(spec.name, version, spec.signature_name, inputs, label)
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
            timeout = 5  # a body shorter than its Content-Length fails, not hangs

            def do_POST(self):  # noqa: N802 (http.server's name)
                length = self.headers.get("Content-Length", "")
                limit = harness.max_request_bytes
                if not length.isdigit():
                    self._refuse(400, f"Bad Content-Length header: {length!r}")
                elif int(length) > limit:
                    self._refuse(413, f"Request body of {length} bytes is over the {limit} limit")
                else:
                    try:
                        body = self.rfile.read(int(length))
                    except TimeoutError:
                        body = b""
                    if len(body) == int(length):
                        self._reply(*harness.rest_predict(self.path, body))
                    else:
                        self._refuse(400, f"Request body of {len(body)} bytes, not {length}")

            def _refuse(self, status: int, message: str):
                self.close_connection = True  # the rest of the body is not read
                self._reply(status, {"error": message})

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

        self._grpc = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", self.max_request_bytes)],
        )
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


def served_versions(entry) -> dict[int, pathlib.Path]:
    """{version: folder} that `entry` (a `ModelConfig`) serves, as TF Serving's
    `model_version_policy` picks them among the numbered folders holding a SavedModel:
    `latest` (the default: 1 version), `all` or `specific`."""
    base = pathlib.Path(entry.base_path)
    found = {
        int(p.name): p
        for p in base.iterdir()
        if p.name.isdigit() and (p / "saved_model.pb").is_file()
    }
    policy = entry.model_version_policy
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return found
    if choice == "specific":
        return {v: found[v] for v in policy.specific.versions if v in found}
    count = policy.latest.num_versions if choice == "latest" else 1
    return {v: found[v] for v in sorted(found)[-max(count, 1) :]}


def _rows_to_columns(instances: list, wanted: dict) -> dict[str, np.ndarray]:
    """TF Serving's row format -> {input name: batch of the signature's dtype}. A bare value
    (not an object of named inputs) is the value of the signature's only input."""
    if not instances:
        raise HarnessError(grpc.StatusCode.INVALID_ARGUMENT, "'instances' is an empty list")
    if all(isinstance(row, dict) and set(row) != {"b64"} for row in instances):
        names = sorted(instances[0])
        if any(sorted(row) != names for row in instances):
            raise HarnessError(
                grpc.StatusCode.INVALID_ARGUMENT, "instances do not all have the same inputs"
            )
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise HarnessError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"JSON object: does not have named input: {missing[0]}",
            )
        return {n: _column([row[n] for row in instances], wanted.get(n)) for n in names}
    if len(wanted) != 1:
        raise HarnessError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"bare instances need a signature with one input, not {sorted(wanted)}",
        )
    (name,) = wanted
    return {name: _column(instances, wanted[name])}


def _column(values: list, spec) -> np.ndarray:
    """JSON values -> a batch of `spec`'s dtype, as TF Serving converts them (strings and
    {"b64": ...} objects for string inputs; numbers that fit for numeric ones)."""
    if spec is not None and spec.dtype == tf.string:
        return np.array([_string_value(v) for v in values], dtype=object)
    try:
        return np.array(
            values, dtype=(spec.dtype if spec is not None else tf.float32).as_numpy_dtype
        )
    except (TypeError, ValueError):
        raise HarnessError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"JSON Value: {json.dumps(values)[:200]} is not of expected type: "
            f"{spec.dtype.name if spec is not None else 'float32'}",
        ) from None


def _string_value(value) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise HarnessError(
                grpc.StatusCode.INVALID_ARGUMENT, "Unable to base64 decode"
            ) from None
    raise HarnessError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"JSON Value: {json.dumps(value)[:200]} not formatted correctly for base64 data",
    )


def _to_json(name: str, value):
    """TF Serving's JSON mapping: `*_bytes` string outputs as {"b64"}, other strings as text."""
    if isinstance(value, bytes):
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(value).decode("ascii")}
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_to_json(name, v) for v in value]
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value
