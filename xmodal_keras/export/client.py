"""Client for a captioner served by TF Serving: REST (standard library only) or gRPC.

REST posts TF Serving's row format to `/v1/models/NAME[/versions/N]:predict`:
`{"signature_name": S, "instances": [{"image_bytes": {"b64": ...}}, ...]}`, and reads
`{"predictions": [...]}` (one object per image; a list of bare values when the signature
has one output). gRPC calls `PredictionService.Predict` from tensorflow-serving-api with
tensors made by `tf.make_tensor_proto` (TensorFlow is imported only for gRPC). Every
failure (HTTP 4xx/5xx, a gRPC status, connection refused, a timeout, a reply that is not
what a captioner returns) raises one `ServingError` naming the server, the model, the
signature and the server's own message.

Example (needs a server; `xmodal predict` is the same from the shell):

    client = ServingClient("localhost:8501", "captioner")
    client.caption(["photo.jpg"])  # [{"caption": "a red circle", "tokens": [...], "score": -1.2}]
    client.embed([open("photo.jpg", "rb").read()]).shape  # (1, D)
    ServingClient("localhost:8501", "clip").embed_text(["a red circle"])  # (1, D)
    ServingClient("localhost:8500", "captioner", grpc=True).caption(["photo.jpg"])
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from xmodal_keras.export.rest_post import http_error_message, post_json

CAPTION_SIGNATURES = ("serving_default", "caption_beam", "caption_pixels")
EMBED_SIGNATURE = "embed_image"
EMBED_TEXT_SIGNATURE = "embed_text"
EMBED_TOKEN_IDS_SIGNATURE = "embed_token_ids"
_PIXELS_SIGNATURE = "caption_pixels"


class ServingError(RuntimeError):
    """A request to the model server failed.

    Attributes: `server` (`"http://host:port"` or `"grpc://host:port"`), `model`,
    `signature`, `status` (HTTP status code, gRPC status name such as `"INVALID_ARGUMENT"`,
    or None when no server answered) and `server_message` (what the server said, or why
    no answer came).
    """

    def __init__(self, *, server: str, model: str, signature: str, status, server_message: str):
        self.server = server
        self.model = model
        self.signature = signature
        self.status = status
        self.server_message = server_message
        where = f"{server}: model '{model}', signature '{signature}'"
        status_text = "" if status is None else f"{status}: "
        super().__init__(f"{where}: {status_text}{server_message}")


class ServingClient:
    """Captions and embeds images with a model served by TF Serving (or anything speaking
    its REST / gRPC predict API).

    Args:
        host_port: `"HOST:PORT"` of the server: its REST port (8501 by convention), or its
            gRPC port (8500) with `grpc=True`.
        model: the model name in the server's `models.config`.
        grpc: use gRPC `PredictionService.Predict` instead of REST. Defaults to False.
        timeout: seconds a request may take in all (connecting, sending, the whole reply;
            a server dripping bytes is cut off too) before raising `ServingError`.
            Defaults to 10.0.
        version: ask for this model version instead of the latest. Defaults to None.
        version_label: ask for the version this label names in the server's
            `models.config` (`"stable"`, `"canary"`) instead. Defaults to None.

    Example:

    >>> client = ServingClient("localhost:8501", "captioner", timeout=5.0)
    >>> client.predict_url
    'http://localhost:8501/v1/models/captioner:predict'
    """

    def __init__(
        self,
        host_port: str,
        model: str,
        *,
        grpc: bool = False,
        timeout: float = 10.0,
        version: int | None = None,
        version_label: str | None = None,
    ):
        host, _, port = str(host_port).rpartition(":")
        if not host or not port.isdigit() or "/" in host_port:
            raise ValueError(f"`host_port` must be 'HOST:PORT'. Received: host_port={host_port!r}")
        if not model or "/" in model or ":" in model:
            raise ValueError(f"`model` must be a model name. Received: model={model!r}")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError(f"`timeout` must be a positive number. Received: timeout={timeout!r}")
        if version is not None and (
            not isinstance(version, int) or isinstance(version, bool) or version <= 0
        ):
            raise ValueError(f"`version` must be a positive int or None. Received: {version=}")
        if version_label is not None and (
            not isinstance(version_label, str)
            or not version_label
            or "/" in version_label
            or ":" in version_label
            or version is not None
        ):
            raise ValueError(
                "`version_label` must be a label name, and not given with `version`. "
                f"Received: {version_label=}, {version=}"
            )
        self.host_port = str(host_port)
        self.model = model
        self.grpc = bool(grpc)
        self.timeout = float(timeout)
        self.version = version
        self.version_label = version_label
        self.server = f"{'grpc' if self.grpc else 'http'}://{self.host_port}"
        version_path = "" if version is None else f"/versions/{version}"
        if version_label is not None:
            version_path = f"/labels/{version_label}"
        self.predict_url = f"http://{self.host_port}/v1/models/{model}{version_path}:predict"
        self._channel = None
        self._stub = None

    # -- public API -------------------------------------------------------------------------

    def caption(self, images: Sequence, signature: str = "serving_default") -> list[dict[str, Any]]:
        """Captions images; returns one `{"caption", "tokens", "score"}` dict per image.

        Args:
            images: image files as `bytes` or paths (sent as they are, the server decodes
                them); for `signature="caption_pixels"`, uint8 arrays `[H, W, 3]` of one size.
            signature: `"serving_default"` (greedy), `"caption_beam"` or `"caption_pixels"`.
                Defaults to `"serving_default"`.

        `tokens` are the token ids the server returned (padded to the batch's length T),
        `score` the sequence log-probability.
        """
        if signature == _PIXELS_SIGNATURE:
            inputs = {"images": _pixel_batch(images)}
        else:
            inputs = {"image_bytes": _image_bytes_list(images)}
        outputs = self._predict(signature, inputs)
        count = len(inputs[next(iter(inputs))])
        for name in ("caption", "tokens", "scores"):
            if name not in outputs or len(outputs[name]) != count:
                self._bad_reply(signature, f"expected output {name!r} with {count} rows")
        return [
            {
                "caption": _text(caption),
                "tokens": [int(t) for t in np.asarray(tokens).reshape(-1)],
                "score": float(score),
            }
            for caption, tokens, score in zip(
                outputs["caption"], outputs["tokens"], outputs["scores"], strict=True
            )
        ]

    def embed(self, images: Sequence, signature: str = EMBED_SIGNATURE) -> np.ndarray:
        """Image embeddings, float32 `[len(images), D]`, from the `embed_image` signature.

        Args:
            images: image files as `bytes` or paths.
            signature: the embedding signature. Defaults to `"embed_image"`.
        """
        inputs = {"image_bytes": _image_bytes_list(images)}
        outputs = self._predict(signature, inputs, single_output="embedding")
        if "embedding" not in outputs or len(outputs["embedding"]) != len(inputs["image_bytes"]):
            self._bad_reply(signature, "expected output 'embedding' with one row per image")
        return np.asarray(outputs["embedding"], dtype=np.float32)

    def embed_text(self, texts: Sequence[str], *, tokenizer=None) -> np.ndarray:
        """Text embeddings, float32 `[len(texts), D]`, of a dual encoder's export.

        Without `tokenizer` the server tokenises (`embed_text`, raw text). With the run's
        tokenizer (`load_run_tokenizer`; a CLIP run's `ClipTextTokenizer`, whose export has
        no `embed_text`), the texts are tokenised here and sent to `embed_token_ids`.

        Args:
            texts: the texts (str).
            tokenizer: None, or a tokenizer with `tokenize_with_mask` or returning ids.
        """
        if isinstance(texts, str | bytes) or not isinstance(texts, Sequence) or not texts:
            raise ValueError(f"`texts` must be a non-empty list of str. Received: {texts!r:.80}")
        if not all(isinstance(text, str) for text in texts):
            raise ValueError(f"`texts` must hold str only. Received: {texts!r:.80}")
        if tokenizer is None:
            signature = EMBED_TEXT_SIGNATURE
            inputs = {"text": [text.encode("utf-8") for text in texts]}
        else:
            signature = EMBED_TOKEN_IDS_SIGNATURE
            if hasattr(tokenizer, "tokenize_with_mask"):
                ids, mask = tokenizer.tokenize_with_mask(list(texts))
            else:
                ids = np.asarray(tokenizer(list(texts)))
                mask = (ids != 0).astype(np.int32)
            inputs = {
                "token_ids": np.asarray(ids, np.int32),
                "padding_mask": np.asarray(mask, np.int32),
            }
        outputs = self._predict(signature, inputs, single_output="embedding")
        if "embedding" not in outputs or len(outputs["embedding"]) != len(texts):
            self._bad_reply(signature, "expected output 'embedding' with one row per text")
        return np.asarray(outputs["embedding"], dtype=np.float32)

    def close(self) -> None:
        """Closes the gRPC channel (REST keeps no connection)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------

    def _error(self, signature: str, status, message: str) -> ServingError:
        return ServingError(
            server=self.server,
            model=self.model,
            signature=signature,
            status=status,
            server_message=message,
        )

    def _bad_reply(self, signature: str, what: str) -> NoReturn:
        raise self._error(signature, None, f"unexpected reply: {what}")

    def _predict(
        self, signature: str, inputs: dict[str, Any], single_output: str = ""
    ) -> dict[str, list]:
        """{output name: list of per-row values} from the server. A REST reply for a
        signature with one output does not name it: it is returned as `single_output`."""
        if not isinstance(signature, str) or not signature:
            raise ValueError(f"`signature` must be a signature name. Received: {signature=}")
        deadline = time.monotonic() + self.timeout
        try:
            return self._send(signature, inputs, single_output, self.timeout)
        except ServingError as error:
            if not _is_unnamed_image_error(error, inputs):
                raise
            raise self._name_bad_image(error, signature, inputs, single_output, deadline) from None

    def _send(
        self, signature: str, inputs: dict[str, Any], single_output: str, timeout: float
    ) -> dict[str, list]:
        if self.grpc:
            return self._predict_grpc(signature, inputs, timeout)
        return self._predict_rest(signature, inputs, single_output, timeout)

    def _name_bad_image(
        self,
        error: ServingError,
        signature: str,
        inputs: dict[str, Any],
        single_output: str,
        deadline: float,
    ) -> ServingError:
        """The server's decoder failed on a batch without saying which image (a whole but
        corrupt JPEG or PNG; header problems are named in the graph). Each image is sent
        alone, within what is left of the timeout, to name the first one that fails.

        Naming it in the serving graph would need a per-image try/except, which core
        TensorFlow ops only offer through a `tf.data` pipeline per request: measured at
        +31 ms per batch-1 request (6.7 -> 37.6 ms), so it is done here, on failure only.
        """
        for position in range(len(inputs["image_bytes"])):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return error
            alone = {name: values[position : position + 1] for name, values in inputs.items()}
            try:
                self._send(signature, alone, single_output, remaining)
            except ServingError as single:
                if single.status != error.status:
                    return error
                return self._error(
                    signature,
                    error.status,
                    f"image {position} of the request (0-based) could not be decoded: "
                    f"{single.server_message}",
                )
        return error

    def _predict_rest(
        self, signature: str, inputs: dict[str, Any], single_output: str, timeout: float
    ) -> dict[str, list]:
        names = list(inputs)
        count = len(inputs[names[0]])
        instances = [{name: _json_value(inputs[name][i]) for name in names} for i in range(count)]
        body = json.dumps({"signature_name": signature, "instances": instances}).encode()
        try:
            status, payload = post_json(self.predict_url, body, timeout)
        except (OSError, http.client.HTTPException) as error:  # TimeoutError is an OSError
            raise self._error(signature, None, _connection_message(error, self)) from None
        if status >= 400:
            raise self._error(signature, status, http_error_message(payload, status))
        try:
            predictions = json.loads(payload)["predictions"]
        except (ValueError, KeyError, TypeError):
            self._bad_reply(signature, f"no 'predictions' in {payload[:200]!r}")
        if not isinstance(predictions, list):
            self._bad_reply(signature, f"'predictions' is not a list: {predictions!r:.200}")
        if predictions and all(_is_named_row(row) for row in predictions):
            return {
                name: [_from_json(row.get(name)) for row in predictions] for name in predictions[0]
            }
        # One named output: TF Serving drops its name and lists the bare values.
        return {single_output: [_from_json(row) for row in predictions]}

    def _predict_grpc(
        self, signature: str, inputs: dict[str, Any], timeout: float
    ) -> dict[str, list]:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        if self._stub is None:
            self._channel = grpc.insecure_channel(self.host_port)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.model_spec.signature_name = signature
        if self.version is not None:
            request.model_spec.version.value = self.version
        if self.version_label is not None:
            request.model_spec.version_label = self.version_label
        for name, values in inputs.items():
            if name == "image_bytes":
                proto = tf.make_tensor_proto(list(values), dtype=tf.string, shape=[len(values)])
            else:
                proto = tf.make_tensor_proto(values)
            request.inputs[name].CopyFrom(proto)
        try:
            response = self._stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            message = error.details() or ""
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                message = f"no answer within {self.timeout:g} s (timeout) ({message})"
            elif code == grpc.StatusCode.UNAVAILABLE:
                message = f"server unavailable, is it running? ({message})"
            raise self._error(signature, code.name, message) from None
        return {name: list(tf.make_ndarray(proto)) for name, proto in response.outputs.items()}


# -- helpers ----------------------------------------------------------------------------------


def _image_bytes_list(images: Sequence) -> list[bytes]:
    if isinstance(images, str | bytes | os.PathLike) or not isinstance(images, Sequence):
        raise ValueError(
            f"`images` must be a list of image bytes or paths. Received: images={images!r:.80}"
        )
    if not images:
        raise ValueError("`images` must not be empty. Received: images=[]")
    result = []
    for image in images:
        if isinstance(image, bytes | bytearray):
            result.append(bytes(image))
        elif isinstance(image, str | os.PathLike):
            result.append(pathlib.Path(image).read_bytes())
        else:
            raise ValueError(
                "Each image must be bytes or a path. "
                f"Received: {type(image).__name__} {image!r:.80}"
            )
    return result


def _is_unnamed_image_error(error: ServingError, inputs: dict[str, Any]) -> bool:
    """A bad-request error for several images that names none of them."""
    return (
        error.status in (400, "INVALID_ARGUMENT")
        and len(inputs.get("image_bytes", ())) > 1
        and "of the request" not in error.server_message
    )


def _pixel_batch(images) -> np.ndarray:
    batch = np.asarray(images)
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3 or not len(batch):
        raise ValueError(
            "`images` for 'caption_pixels' must be uint8 arrays [H, W, 3] of one size. "
            f"Received: dtype={batch.dtype}, shape={batch.shape}"
        )
    return batch


def _json_value(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return np.asarray(value).tolist()


def _is_named_row(row) -> bool:
    """A row of a multi-output reply: {output name: value}, not a bare {"b64": ...} value."""
    return isinstance(row, dict) and set(row) != {"b64"}


def _from_json(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _connection_message(reason, client: ServingClient) -> str:
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError
        return f"no answer within {client.timeout:g} s (timeout)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused: is the server running on this port?"
    return f"cannot reach the server: {reason}"


def run_predict(
    server: str,
    model: str,
    images: Sequence[str],
    *,
    grpc: bool = False,
    signature: str = "serving_default",
    timeout: float = 10.0,
    version: int | None = None,
) -> int:
    """`xmodal predict`: prints `PATH: CAPTION  [score S]` per image; returns the exit status.

    A server failure is printed as one `xmodal: error: ...` line on stderr and returns 1.
    """
    if signature not in CAPTION_SIGNATURES or signature == _PIXELS_SIGNATURE:
        raise ValueError(
            "`signature` must be 'serving_default' or 'caption_beam' for image files. "
            f"Received: signature={signature!r}"
        )
    client = ServingClient(server, model, grpc=grpc, timeout=timeout, version=version)
    try:
        results = client.caption(list(images), signature=signature)
    except ServingError as error:
        print(f"xmodal: error: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for path, result in zip(images, results, strict=True):
        print(f"{path}: {result['caption']}  [score {result['score']:.4f}]")
    return 0
