"""Feature extractors of MSE-Adapter: raw audio / video -> the frame features the adapter reads.

Two processor parts, saved with ``save_pretrained`` and restored with ``from_pretrained`` like any
transformers feature extractor, so a checkpoint records exactly how its features were made:

* ``MSEAdapterAudioFeatureExtractor`` (``preprocessor_config.json``): a waveform or a media file ->
  ``audio_values`` (frames, ``feature_size``). Backends: ``egemaps`` (openSMILE eGeMAPSv02 low-level
  descriptors, 25 per 10 ms frame), ``compare`` (openSMILE ComParE 2016 LLDs, 65), ``librosa`` (20 MFCC +
  12 chroma_cqt + 1 zero-crossing rate = 33, at 22,050 Hz: the CH-SIMS recipe) or any transformers audio
  encoder by name or path (the hidden states of one layer). Frames are optionally standardised per feature
  (statistics fitted on a training split and saved in the config) and averaged into a fixed number of windows
  or a fixed frame rate: long raw descriptor sequences do not train the adapter's LSTM.
* ``MSEAdapterVideoProcessor`` (``video_preprocessor_config.json``): a video file -> frames sampled at ``fps``
  with PyAV, optionally cropped to the largest face (OpenCV's bundled Haar cascade; a frame without a face is
  kept whole and counted), encoded by a vision encoder loadable with ``AutoModel`` (CLIP, SigLIP, timm through
  ``TimmWrapperConfig``...) -> ``video_values`` (frames, ``feature_size``), one pooled vector per frame.

A missing stream gives zero frames (the adapter's missing-modality path). ``opensmile``, ``librosa`` and
``cv2`` are imported only by the backend that needs them.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from collections.abc import Sequence
from typing import Any

import av
import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    BatchFeature,
    SequenceFeatureExtractor,
)
from transformers.video_processing_utils import VideoProcessorMixin

# Built-in audio backends: name -> (feature width, sampling rate the backend reads).
AUDIO_BACKENDS: dict[str, tuple[int, int]] = {
    "egemaps": (25, 16_000),
    "compare": (65, 16_000),
    "librosa": (33, 22_050),
}
LIBROSA_HOP_LENGTH = 512
STANDARDIZATION_EPSILON = 1e-6


class MediaError(ValueError):
    """A media file that cannot be used: unreadable, without the expected stream, or too long."""


def _stream_seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def open_media(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` with PyAV, or raise a ``FileNotFoundError`` / ``MediaError`` naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: media file not found")
    try:
        return av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise MediaError(
            f"{path}: not a readable media file ({error}); expected an audio or video file FFmpeg decodes"
        ) from error


def _resampler(sampling_rate: int) -> av.AudioResampler:
    return av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)


def _frames_to_array(frames: list[av.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames]).astype(np.float32)


def load_audio(
    path: str | os.PathLike, sampling_rate: int, max_seconds: float | None = None
) -> np.ndarray | None:
    """Decode the first audio stream of ``path`` as mono float32 at ``sampling_rate``.

    Returns:
        ``(samples,)`` float32, or ``None`` when the file has no audio stream.

    Raises:
        MediaError: unreadable file, or (checked before decoding) audio longer than ``max_seconds``.
    """
    with open_media(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        seconds = _stream_seconds(container, stream)
        if max_seconds is not None and seconds is not None and seconds > max_seconds:
            raise MediaError(
                f"{os.fspath(path)}: audio lasts {seconds:.1f} s, longer than max_seconds={max_seconds:g}; "
                "cut the clip or raise max_seconds"
            )
        resampler = _resampler(sampling_rate)
        frames: list[av.AudioFrame] = []
        try:
            for frame in container.decode(stream):
                frames.extend(resampler.resample(frame))
            frames.extend(resampler.resample(None))
        except av.FFmpegError as error:
            raise MediaError(f"{os.fspath(path)}: the audio stream cannot be decoded ({error})") from error
    return _frames_to_array(frames)


def to_mono(waveform: Any, what: str = "audio") -> np.ndarray:
    """``(samples,)`` or ``(channels, samples)`` numbers -> mono float32 ``(samples,)`` (channel mean)."""
    array = np.asarray(waveform)
    if array.dtype.kind not in "iuf" or array.ndim not in (1, 2):
        raise ValueError(
            f"{what}: expected a waveform of real numbers shaped (samples,) or (channels, samples), got "
            f"dtype {array.dtype} and shape {array.shape}"
        )
    if array.ndim == 2:
        if array.shape[0] > array.shape[1]:
            raise ValueError(
                f"{what}: a 2-D waveform must be (channels, samples) with fewer channels than samples, got "
                f"shape {array.shape}"
            )
        array = array.mean(axis=0)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: the waveform holds NaN or infinite samples")
    return array


def resample(waveform: np.ndarray, orig_sampling_rate: int, sampling_rate: int) -> np.ndarray:
    """Mono float32 ``(samples,)`` at ``orig_sampling_rate`` -> ``(samples',)`` at ``sampling_rate``."""
    if orig_sampling_rate == sampling_rate or waveform.size == 0:
        return waveform
    frame = av.AudioFrame.from_ndarray(waveform[None, :], format="flt", layout="mono")
    frame.sample_rate = orig_sampling_rate
    resampler = _resampler(sampling_rate)
    return _frames_to_array(resampler.resample(frame) + resampler.resample(None))


def window_means(frames: np.ndarray, num_windows: int) -> np.ndarray:
    """``(T, D)`` -> ``(min(T, num_windows), D)``: means of ``num_windows`` near-equal spans."""
    if frames.shape[0] <= num_windows:
        return frames
    bounds = np.linspace(0, frames.shape[0], num_windows + 1).round().astype(int)
    return np.stack([frames[start:end].mean(axis=0) for start, end in itertools.pairwise(bounds)])


def _public_state(instance: Any) -> dict[str, Any]:
    # Loaded encoders, detectors and openSMILE objects live in private attributes: never serialised.
    return {key: copy.deepcopy(value) for key, value in instance.__dict__.items() if not key.startswith("_")}


def _encoder_output_width(config: Any, name: str) -> int:
    for attribute in ("hidden_size", "d_model"):
        width = getattr(config, attribute, None)
        if isinstance(width, int):
            return width
    raise ValueError(f"{name}: its config has neither hidden_size nor d_model; cannot tell the feature width")


class MSEAdapterAudioFeatureExtractor(SequenceFeatureExtractor):
    """Audio -> ``audio_values`` ``(frames, feature_size)`` and ``audio_lengths`` for MSE-Adapter.

    Args:
        backend: ``"egemaps"``, ``"compare"``, ``"librosa"`` or a transformers audio encoder id / local path
            (loaded with ``AutoFeatureExtractor`` + ``AutoModel``; an encoder-decoder such as Whisper uses its
            encoder).
        layer: the encoder's hidden state to take (``hidden_states[layer]``, -1 = last); encoders only.
        feature_mean / feature_std: per-feature standardisation statistics (``feature_size`` floats each, from
            ``fit_standardization`` on a training split), applied before pooling; ``None`` = raw values.
        pool_windows: average the frames into this many equal windows (clips with fewer frames keep them).
        pool_frame_rate: average the frames into windows of ``1 / pool_frame_rate`` seconds instead.
        max_seconds: longer audio is refused before any decoding or compute.
        feature_size / sampling_rate: derived from the backend; a saved value that disagrees is an error.
    """

    model_input_names = ("audio_values", "audio_lengths")

    def __init__(
        self,
        backend: str = "egemaps",
        layer: int = -1,
        feature_mean: Sequence[float] | None = None,
        feature_std: Sequence[float] | None = None,
        pool_windows: int | None = None,
        pool_frame_rate: float | None = None,
        max_seconds: float = 600.0,
        feature_size: int | None = None,
        sampling_rate: int | None = None,
        padding_value: float = 0.0,
        **kwargs,
    ) -> None:
        kwargs.pop("feature_extractor_type", None)
        if not isinstance(backend, str) or not backend:
            raise ValueError(f"backend must be a non-empty string, got {backend!r}")
        if pool_windows is not None and pool_frame_rate is not None:
            raise ValueError(
                f"pool_windows ({pool_windows}) and pool_frame_rate ({pool_frame_rate}) exclude each other"
            )
        if pool_windows is not None and (
            isinstance(pool_windows, bool) or not isinstance(pool_windows, int) or pool_windows < 1
        ):
            raise ValueError(f"pool_windows must be an integer >= 1, got {pool_windows!r}")
        if pool_frame_rate is not None and not (
            isinstance(pool_frame_rate, (int, float)) and pool_frame_rate > 0
        ):
            raise ValueError(
                f"pool_frame_rate must be a number > 0 (frames per second), got {pool_frame_rate!r}"
            )
        if not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
            raise ValueError(f"max_seconds must be a number > 0, got {max_seconds!r}")
        if backend in AUDIO_BACKENDS:
            width, rate = AUDIO_BACKENDS[backend]
        else:
            width, rate = self._encoder_signature(backend)
        for field, saved, derived in (
            ("feature_size", feature_size, width),
            ("sampling_rate", sampling_rate, rate),
        ):
            if saved is not None and saved != derived:
                raise ValueError(f"{field} is {saved}, but backend {backend!r} gives {derived}")
        super().__init__(feature_size=width, sampling_rate=rate, padding_value=padding_value, **kwargs)
        self.backend = backend
        self.layer = layer
        self.pool_windows = pool_windows
        self.pool_frame_rate = pool_frame_rate
        self.max_seconds = max_seconds
        self.feature_mean = feature_mean
        self.feature_std = feature_std
        self._check_statistics()
        self._engine: Any = None

    @staticmethod
    def _encoder_signature(backend: str) -> tuple[int, int]:
        try:
            config = AutoConfig.from_pretrained(backend)
            sampling_rate = AutoFeatureExtractor.from_pretrained(backend).sampling_rate
        except (OSError, ValueError) as error:
            raise ValueError(
                f"unknown audio backend {backend!r}: expected one of {sorted(AUDIO_BACKENDS)} or a "
                f"transformers "
                f"audio model id / folder with a config and a feature extractor ({error})"
            ) from error
        return _encoder_output_width(config, backend), int(sampling_rate)

    def _check_statistics(self) -> None:
        if (self.feature_mean is None) != (self.feature_std is None):
            raise ValueError("feature_mean and feature_std go together: set both or neither")
        if self.feature_mean is None:
            return
        for field in ("feature_mean", "feature_std"):
            values = np.asarray(getattr(self, field), dtype=np.float64)
            if values.shape != (self.feature_size,) or not np.isfinite(values).all():
                raise ValueError(
                    f"{field} must be {self.feature_size} finite numbers (the backend's width), got shape "
                    f"{values.shape}"
                )
        if min(self.feature_std) <= 0:
            raise ValueError("feature_std must be > 0 everywhere")

    def to_dict(self) -> dict[str, Any]:
        output = _public_state(self)
        output["feature_extractor_type"] = type(self).__name__
        return output

    # Raw frames -----------------------------------------------------------------------------------------

    def _load_engine(self) -> Any:
        if self._engine is not None:
            return self._engine
        if self.backend in ("egemaps", "compare"):
            import opensmile

            feature_set = (
                opensmile.FeatureSet.eGeMAPSv02
                if self.backend == "egemaps"
                else opensmile.FeatureSet.ComParE_2016
            )
            self._engine = opensmile.Smile(
                feature_set=feature_set, feature_level=opensmile.FeatureLevel.LowLevelDescriptors
            )
        elif self.backend == "librosa":
            import librosa

            self._engine = librosa
        else:
            model = AutoModel.from_pretrained(self.backend)
            if getattr(model.config, "is_encoder_decoder", False):
                model = model.get_encoder()
            self._engine = (AutoFeatureExtractor.from_pretrained(self.backend), model.eval())
        return self._engine

    def extract_frames(self, waveform: Any, sampling_rate: int) -> np.ndarray:
        """One waveform -> the backend's raw frames ``(T, feature_size)`` float32, not standardised or pooled.

        ``waveform`` is ``(samples,)`` or ``(channels, samples)``; it is mixed down to mono and resampled to
        the backend's rate. An empty waveform gives ``(0, feature_size)``.
        """
        audio = resample(to_mono(waveform), int(sampling_rate), self.sampling_rate)
        if audio.size == 0:
            return np.zeros((0, self.feature_size), dtype=np.float32)
        engine = self._load_engine()
        if self.backend in ("egemaps", "compare"):
            frames = engine.process_signal(audio, self.sampling_rate).to_numpy()
        elif self.backend == "librosa":
            frames = np.concatenate(
                [
                    engine.feature.mfcc(
                        y=audio, sr=self.sampling_rate, n_mfcc=20, hop_length=LIBROSA_HOP_LENGTH
                    ),
                    engine.feature.chroma_cqt(y=audio, sr=self.sampling_rate, hop_length=LIBROSA_HOP_LENGTH),
                    engine.feature.zero_crossing_rate(audio, hop_length=LIBROSA_HOP_LENGTH),
                ]
            ).T
        else:
            processor, model = engine
            inputs = processor(audio, sampling_rate=self.sampling_rate, return_tensors="pt")
            with torch.inference_mode():
                hidden_states = model(**inputs, output_hidden_states=True).hidden_states
            frames = hidden_states[self.layer][0].float().numpy()
        return np.nan_to_num(np.asarray(frames, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)

    # Standardisation and pooling ------------------------------------------------------------------------

    def fit_standardization(self, frame_arrays: Sequence[np.ndarray]) -> None:
        """Set ``feature_mean`` / ``feature_std`` from a training split's raw frames ``[(T_i, D)]``.

        A feature constant over the split gets a standard deviation of 1 (it is only centred).
        """
        count, total, squares = 0, np.zeros(self.feature_size), np.zeros(self.feature_size)
        for frames in frame_arrays:
            frames = np.asarray(frames, dtype=np.float64).reshape(-1, self.feature_size)
            count += frames.shape[0]
            total += frames.sum(axis=0)
            squares += np.square(frames).sum(axis=0)
        if count == 0:
            raise ValueError("fit_standardization got no frames: every training clip lacks audio")
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
        std[std < STANDARDIZATION_EPSILON] = 1.0
        self.feature_mean, self.feature_std = mean.tolist(), std.tolist()

    def postprocess(self, frames: np.ndarray, seconds: float) -> np.ndarray:
        """Raw frames ``(T, feature_size)`` of ``seconds`` of audio -> standardised, pooled ``(T', D)``."""
        frames = np.asarray(frames, dtype=np.float32).reshape(-1, self.feature_size)
        if self.feature_mean is not None:
            frames = (frames - np.asarray(self.feature_mean, np.float32)) / np.asarray(
                self.feature_std, np.float32
            )
        if self.pool_windows is not None:
            frames = window_means(frames, self.pool_windows)
        elif self.pool_frame_rate is not None:
            frames = window_means(frames, max(1, math.ceil(seconds * self.pool_frame_rate)))
        return frames.astype(np.float32)

    # Calling ----------------------------------------------------------------------------------------------

    def load(self, path: str | os.PathLike) -> np.ndarray | None:
        """The audio of a media file at this extractor's rate (``None`` when it has no audio stream)."""
        return load_audio(path, self.sampling_rate, self.max_seconds)

    def _one(self, item: Any, sampling_rate: int | None, where: str) -> np.ndarray:
        if isinstance(item, (str, os.PathLike)):
            waveform = self.load(item)
            if waveform is None:
                return np.zeros((0, self.feature_size), dtype=np.float32)
            rate = self.sampling_rate
        else:
            if sampling_rate is None:
                raise ValueError(
                    f"{where}: a waveform needs sampling_rate= (its rate in Hz); this extractor resamples to "
                    f"{self.sampling_rate}"
                )
            waveform, rate = to_mono(item, where), sampling_rate
            seconds = waveform.shape[0] / rate
            if seconds > self.max_seconds:
                raise MediaError(
                    f"{where}: audio lasts {seconds:.1f} s, longer than max_seconds={self.max_seconds:g}"
                )
        seconds = np.asarray(waveform).shape[-1] / rate
        return self.postprocess(self.extract_frames(waveform, rate), seconds)

    def __call__(
        self,
        audio: Any,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Media file path(s) or waveform(s) -> ``audio_values`` and ``audio_lengths``.

        Args:
            audio: a path, a waveform ``(samples,)`` / ``(channels, samples)``, or a list of those.
            sampling_rate: the rate of the given waveforms (required for waveforms; files carry theirs).
            return_tensors: ``"pt"`` gives ``audio_values`` ``(batch, max_frames, feature_size)`` right-padded
                with ``padding_value`` and ``audio_lengths`` ``(batch,)``; ``None`` a list of ``(T_i,
                feature_size)`` arrays.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if sampling_rate is not None and (
            isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int) or sampling_rate <= 0
        ):
            raise ValueError(f"sampling_rate must be a positive integer (Hz), got {sampling_rate!r}")
        single = isinstance(audio, (str, os.PathLike)) or (
            isinstance(audio, np.ndarray) and audio.ndim in (1, 2) and audio.dtype.kind in "iuf"
        )
        items = [audio] if single else list(audio)
        values = [self._one(item, sampling_rate, f"audio[{i}]") for i, item in enumerate(items)]
        lengths = [len(frames) for frames in values]
        if return_tensors is None:
            return BatchFeature({"audio_values": values, "audio_lengths": lengths})
        if return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        padded = torch.full(
            (len(values), max(lengths, default=0), self.feature_size), float(self.padding_value)
        )
        for row, frames in enumerate(values):
            padded[row, : len(frames)] = torch.from_numpy(frames)
        return BatchFeature(
            {"audio_values": padded, "audio_lengths": torch.tensor(lengths, dtype=torch.long)}
        )


class MSEAdapterVideoProcessor(VideoProcessorMixin):
    """Video -> ``video_values`` ``(frames, feature_size)`` and ``video_lengths`` for MSE-Adapter.

    Args:
        encoder: a vision encoder id / local folder loadable with ``AutoModel`` and ``AutoImageProcessor``
            (CLIP/SigLIP vision towers, ViT, timm models through ``TimmWrapperConfig``...). Each frame becomes
            the encoder's ``pooler_output`` (or the mean of its last hidden state when it has none).
        fps: frames sampled per second of video.
        crop_face: crop each frame to its largest face (OpenCV Haar cascade); a frame without one stays whole.
        max_seconds: a longer video is refused before decoding.
        batch_size: frames per encoder call.
        feature_size: derived from the encoder; a saved value that disagrees is an error.
    """

    model_input_names = ("video_values", "video_lengths")

    def __init__(
        self,
        encoder: str | None = None,
        fps: float = 1.0,
        crop_face: bool = True,
        max_seconds: float = 600.0,
        batch_size: int = 32,
        feature_size: int | None = None,
        **kwargs,
    ) -> None:
        for key in ("video_processor_type", "image_processor_type", "feature_extractor_type"):
            kwargs.pop(key, None)
        if not isinstance(encoder, str) or not encoder:
            raise ValueError(f"encoder must name a vision model (an id or a local folder), got {encoder!r}")
        if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0):
            raise ValueError(f"fps must be a number > 0, got {fps!r}")
        if not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
            raise ValueError(f"max_seconds must be a number > 0, got {max_seconds!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        super().__init__(**kwargs)
        self.encoder = encoder
        self.fps = fps
        self.crop_face = crop_face
        self.max_seconds = max_seconds
        self.batch_size = batch_size
        self._encoder_parts: tuple[Any, Any] | None = None
        self._face_detector: Any = None
        width = self._encoder_width()
        if feature_size is not None and feature_size != width:
            raise ValueError(f"feature_size is {feature_size}, but encoder {encoder!r} gives {width}")
        self.feature_size = width

    def to_dict(self) -> dict[str, Any]:
        output = _public_state(self)
        output["video_processor_type"] = type(self).__name__
        return output

    def _load_encoder(self) -> tuple[Any, Any]:
        if self._encoder_parts is None:
            try:
                image_processor = AutoImageProcessor.from_pretrained(self.encoder)
                model = AutoModel.from_pretrained(self.encoder)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"unknown video encoder {self.encoder!r}: expected a vision model id or folder "
                    "loadable with "
                    f"AutoModel and AutoImageProcessor ({error})"
                ) from error
            self._encoder_parts = (image_processor, model.eval())
        return self._encoder_parts

    def _encoder_width(self) -> int:
        _, model = self._load_encoder()
        width = getattr(model.config, "hidden_size", None)
        if not isinstance(width, int):
            # timm models (TimmWrapperModel) report their pooled width on the wrapped timm model only.
            width = getattr(getattr(model, "timm_model", None), "num_features", None)
        if not isinstance(width, int):
            raise ValueError(f"{self.encoder}: cannot tell the encoder's output width (no hidden_size)")
        return width

    def decode_frames(self, path: str | os.PathLike) -> list[np.ndarray] | None:
        """Frames of ``path`` sampled at ``fps`` as RGB ``(H, W, 3)`` uint8; ``None`` without video."""
        with open_media(path) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            seconds = _stream_seconds(container, stream)
            if seconds is not None and seconds > self.max_seconds:
                raise MediaError(
                    f"{os.fspath(path)}: video lasts {seconds:.1f} s, longer than max_seconds="
                    f"{self.max_seconds:g}; cut the clip or raise max_seconds"
                )
            frames, next_time = [], 0.0
            try:
                for frame in container.decode(stream):
                    time = frame.time if frame.time is not None else next_time
                    if time > self.max_seconds:
                        raise MediaError(
                            f"{os.fspath(path)}: video runs past max_seconds={self.max_seconds:g} s"
                        )
                    if time + 1e-6 >= next_time:
                        frames.append(frame.to_ndarray(format="rgb24"))
                        next_time += 1.0 / self.fps
            except av.FFmpegError as error:
                raise MediaError(
                    f"{os.fspath(path)}: the video stream cannot be decoded ({error})"
                ) from error
        return frames

    def crop_faces(self, frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int]:
        """Crop each RGB frame to its largest detected face; returns the frames and how many had no face."""
        import cv2

        if self._face_detector is None:
            self._face_detector = cv2.CascadeClassifier(
                os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
            )
        cropped, without_face = [], 0
        for frame in frames:
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            faces = self._face_detector.detectMultiScale(
                gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24)
            )
            if len(faces) == 0:
                without_face += 1
                cropped.append(frame)
                continue
            x, y, width, height = max(faces, key=lambda box: box[2] * box[3])
            cropped.append(frame[y : y + height, x : x + width])
        return cropped, without_face

    def encode_frames(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """RGB frames -> ``(len(frames), feature_size)`` float32, one pooled encoder vector per frame."""
        if not frames:
            return np.zeros((0, self.feature_size), dtype=np.float32)
        image_processor, model = self._load_encoder()
        outputs = []
        for start in range(0, len(frames), self.batch_size):
            pixels = image_processor(
                images=list(frames[start : start + self.batch_size]), return_tensors="pt"
            )
            with torch.inference_mode():
                output = model(pixel_values=pixels["pixel_values"])
            pooled = getattr(output, "pooler_output", None)
            if pooled is None:
                pooled = output.last_hidden_state.mean(dim=1)
            outputs.append(pooled.reshape(pooled.shape[0], -1).float().numpy())
        return np.concatenate(outputs).astype(np.float32)

    def process_file(self, path: str | os.PathLike) -> tuple[np.ndarray, int | None]:
        """One video file -> ``(frames, feature_size)`` and the count of frames without a face.

        A file without a video stream gives ``(0, feature_size)`` and ``None`` (nothing was searched).
        """
        frames = self.decode_frames(path)
        if frames is None:
            return np.zeros((0, self.feature_size), dtype=np.float32), None
        without_face = 0
        if self.crop_face:
            frames, without_face = self.crop_faces(frames)
        return self.encode_frames(frames), without_face

    def preprocess(self, videos: Any, return_tensors: str | None = None, **kwargs) -> BatchFeature:
        """Video path(s) -> ``video_values`` / ``video_lengths`` and ``frames_without_face`` per video.

        ``return_tensors="pt"`` pads ``video_values`` with zeros to ``(batch, max_frames, feature_size)``.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        paths = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
        for i, path in enumerate(paths):
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(f"videos[{i}]: expected a video file path, got {type(path).__name__}")
        results = [self.process_file(path) for path in paths]
        values = [frames for frames, _ in results]
        without_face = [count or 0 for _, count in results]
        lengths = [len(frames) for frames in values]
        if return_tensors is None:
            return BatchFeature(
                {"video_values": values, "video_lengths": lengths, "frames_without_face": without_face}
            )
        if return_tensors != "pt":
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        padded = torch.zeros(len(values), max(lengths, default=0), self.feature_size)
        for row, frames in enumerate(values):
            padded[row, : len(frames)] = torch.from_numpy(frames)
        return BatchFeature(
            {
                "video_values": padded,
                "video_lengths": torch.tensor(lengths, dtype=torch.long),
                "frames_without_face": torch.tensor(without_face, dtype=torch.long),
            }
        )

    def __call__(self, videos: Any, **kwargs) -> BatchFeature:
        return self.preprocess(videos, **kwargs)


# Saved configs name their class in `auto_map` and the folder gets this module, so a checkpoint's extractors
# load with `AutoFeatureExtractor` / `AutoVideoProcessor` and trust_remote_code (what `pipeline()` does).
MSEAdapterAudioFeatureExtractor.register_for_auto_class()
MSEAdapterVideoProcessor.register_for_auto_class()

# The processor parts (attribute name -> class) and the modality each one feeds.
PROCESSOR_PARTS = {
    "feature_extractor": MSEAdapterAudioFeatureExtractor,
    "video_processor": MSEAdapterVideoProcessor,
}
PART_MODALITIES = {"feature_extractor": "audio", "video_processor": "video"}


def check_part_width(part_name: str, part: Any, width: int | None, owner: str) -> int | None:
    """The feature width a processor part gives (its declared ``feature_size``), which ``width`` (the
    ``<modality>_feature_dim`` of ``owner``: a processor, a config) must equal when set; ``width`` when there
    is no part. Raises a ``ValueError`` naming both widths."""
    if part is None:
        return width
    modality = PART_MODALITIES[part_name]
    if width is not None and width != part.feature_size:
        raise ValueError(
            f"{owner} has {modality}_feature_dim={width}, but the {part_name} ({type(part).__name__}) makes "
            f"{part.feature_size}-wide {modality} features; the two must be equal"
        )
    return part.feature_size


class ExtractorPartsMixin:
    """Lets a `ProcessorMixin` hold the extractors as optional parts, the way Qwen2-Audio's processor holds a
    ``feature_extractor`` next to its tokenizer: ``feature_extractor`` and ``video_processor`` may each be
    ``None`` (features extracted elsewhere). ``ProcessorMixin`` requires, saves and loads every part its
    ``__init__`` declares; these overrides skip the absent ones. Present parts are saved inside
    ``processor_config.json`` (as transformers nests every part) and restored from it."""

    def check_argument_for_proper_class(self, argument_name: str, argument: Any):
        if argument is None and argument_name in PROCESSOR_PARTS:
            return None
        return super().check_argument_for_proper_class(argument_name, argument)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> list[str]:
        # ProcessorMixin.save_pretrained walks `self.get_attributes()`: an instance attribute shadows the
        # classmethod for this one call, so it walks the present parts only (`to_dict`, which reads the
        # class's list, still records an absent part as null).
        present = [name for name in type(self).get_attributes() if getattr(self, name) is not None]
        self.get_attributes = lambda: present
        try:
            return super().save_pretrained(save_directory, **kwargs)
        finally:
            del self.get_attributes

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        """The tokenizer, then each part as ``processor_config.json`` records it (null / absent: None)."""
        tokenizer = cls._load_tokenizer_from_pretrained(
            "tokenizer", pretrained_model_name_or_path, subfolder=kwargs.pop("subfolder", ""), **kwargs
        )
        saved = processor_dict or {}
        parts = [
            None if saved.get(name) is None else part_class.from_dict(dict(saved[name]))
            for name, part_class in PROCESSOR_PARTS.items()
        ]
        return [tokenizer, *parts]


__all__ = [
    "AUDIO_BACKENDS",
    "PROCESSOR_PARTS",
    "ExtractorPartsMixin",
    "MSEAdapterAudioFeatureExtractor",
    "MSEAdapterVideoProcessor",
    "MediaError",
    "check_part_width",
    "load_audio",
    "resample",
    "to_mono",
    "window_means",
]
