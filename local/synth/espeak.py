"""A small ctypes binding to espeak-ng's C library (libespeak-ng.so.1, API of speak_lib.h).

The library holds global state, so there is one engine per process: `Espeak()` initialises
it once (synchronous retrieval mode, phoneme events on) and later instances share it.
That state also carries over from one utterance to the next (e.g. the phase of the pitch
flutter, and libc's rand() behind breath noise), so the same text can come out slightly
different depending on what was spoken before. `engine.reset(seed)` reloads the library
and seeds rand(): after it, an utterance's audio depends only on its own settings.

    engine = Espeak()
    engine.set_voice("en-gb-scotland+f3")
    engine.set_parameter(RATE, 160)          # words per minute
    out = engine.synth("turn on the kitchen lights")
    out.samples                              # int16 numpy array at out.sample_rate (22050)
    out.events                               # [Event(type, text_position, length, sample, name)]
    engine.text_to_phonemes("kitchen")       # ["k", "I", "tS", "I", "n"] (espeak's ascii names)

Events (what espeak-ng 1.51 reports, see DESIGN.md "The embedded corpus"): WORD events carry
the 1-based character position and length of the word in the text, PHONEME events the
phoneme's ascii name; `sample` is the event's position in the output samples.
"""

from __future__ import annotations

import _ctypes
import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

# espeak_AUDIO_OUTPUT
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
# espeak_EVENT_TYPE
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_MARK = 3
EVENT_PLAY = 4
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
EVENT_SAMPLERATE = 8
# espeak_PARAMETER
RATE = 1
VOLUME = 2
PITCH = 3
RANGE = 4
PUNCTUATION = 5
CAPITALS = 6
WORDGAP = 7
INTONATION = 9
# espeak_POSITION_TYPE
POS_CHARACTER = 1
# text flags
CHARS_UTF8 = 1
ENDPAUSE = 0x1000

EE_OK = 0


class EspeakError(RuntimeError):
    pass


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Event:
    type: int
    text_position: int  # 1-based character position in the text (WORD events)
    length: int  # characters (WORD events)
    sample: int  # position in the output samples
    name: str  # phoneme name (PHONEME events), else ""


@dataclass
class Synthesis:
    samples: np.ndarray  # int16
    events: list[Event]
    sample_rate: int


_LOCK = threading.Lock()
_STATE: dict = {}


_NAMES: dict = {}


def _library_name(path: str | None) -> str:
    # find_library runs ldconfig: once per process is enough.
    if path:
        return path
    if "espeak" not in _NAMES:
        _NAMES["espeak"] = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    return _NAMES["espeak"]


def _load_library(path: str | None) -> ctypes.CDLL:
    name = _library_name(path)
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise EspeakError(f"cannot load espeak-ng's library {name!r} ({e}); "
                          "install the Debian package espeak-ng") from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_GetParameter.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.espeak_GetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint),
                                 ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                          ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    return lib


def _start(library: str | None, data_path: str | None) -> None:
    """Loads and initialises the library into _STATE (call with _LOCK held)."""
    lib = _load_library(library)
    rate = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode() if data_path else None,
        INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise EspeakError("espeak_Initialize failed (is espeak-ng-data installed?)")
    _STATE.update(lib=lib, sample_rate=rate, sink=None, library=library, data_path=data_path)
    # The callback object must outlive every synth call: keep it in _STATE.
    _STATE["callback"] = _CALLBACK(_on_synth)
    lib.espeak_SetSynthCallback(_STATE["callback"])


def _stop() -> None:
    """Terminates and unloads the library, so that a new load starts from clean state."""
    lib = _STATE["lib"]
    lib.espeak_Terminate()
    handle = lib._handle
    _STATE.clear()
    del lib
    _ctypes.dlclose(handle)


class Espeak:
    """The process' espeak-ng engine (initialised on first use, shared afterwards)."""

    def __init__(self, library: str | None = None, data_path: str | None = None):
        with _LOCK:
            if not _STATE:
                _start(library, data_path)
        self.sample_rate: int = _STATE["sample_rate"]
        self._data_path: str | None = None

    @property
    def _lib(self) -> ctypes.CDLL:
        return _STATE["lib"]

    def reset(self, seed: int = 0) -> None:
        """Reloads the library (clean internal state) and seeds libc's rand(); the voice
        and parameters must be set again afterwards."""
        with _LOCK:
            library, data_path = _STATE.get("library"), _STATE.get("data_path")
            if _STATE:
                _stop()
            _start(library, data_path)
            _libc().srand(ctypes.c_uint(seed & 0xFFFFFFFF))

    def version(self) -> str:
        return self._lib.espeak_Info(None).decode()

    def data_path(self) -> str:
        """The espeak-ng-data directory in use."""
        if self._data_path is None:
            path = ctypes.c_char_p()
            self._lib.espeak_Info(ctypes.byref(path))
            self._data_path = path.value.decode() if path.value else ""
        return self._data_path

    def set_voice(self, name: str) -> None:
        """A voice by name, e.g. 'en-us', 'en-gb-x-rp+m3' (language voice + variant)."""
        self._check(self._lib.espeak_SetVoiceByName(name.encode()), f"voice {name!r}")

    def set_voice_by_properties(self, language: str, gender: int = 0, age: int = 0,
                                variant: int = 0) -> None:
        """A voice by properties (gender 0 any, 1 male, 2 female; variant picks among the
        voices that fit)."""
        spec = _Voice(name=None, languages=language.encode(), identifier=None, gender=gender,
                      age=age, variant=variant)
        self._check(self._lib.espeak_SetVoiceByProperties(ctypes.byref(spec)),
                    f"voice properties {language}/{gender}/{variant}")

    def set_parameter(self, parameter: int, value: int) -> None:
        self._check(self._lib.espeak_SetParameter(parameter, int(value), 0),
                    f"parameter {parameter}={value}")

    def get_parameter(self, parameter: int) -> int:
        return self._lib.espeak_GetParameter(parameter, 1)

    def synth(self, text: str) -> Synthesis:
        """Speaks text; returns the samples and the events, with sample positions."""
        data = text.encode("utf-8") + b"\0"
        sink: dict = {"chunks": [], "events": []}
        with _LOCK:
            _STATE["sink"] = sink
            try:
                self._check(self._lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0,
                                                   CHARS_UTF8, None, None), "synth")
                self._check(self._lib.espeak_Synchronize(), "synchronize")
            finally:
                _STATE["sink"] = None
        chunks = sink["chunks"]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return Synthesis(samples, sink["events"], self.sample_rate)

    def text_to_phonemes(self, text: str) -> list[str]:
        """espeak's own phonemisation of text: ascii phoneme names, no stress marks, no
        word separators (all clauses concatenated)."""
        phonemes: list[str] = []
        for word in self.text_to_phoneme_words(text):
            phonemes.extend(word)
        return phonemes

    def text_to_phoneme_words(self, text: str) -> list[list[str]]:
        """As text_to_phonemes, but one list per space-separated phoneme group of espeak's
        output (espeak may join a function word to its neighbour)."""
        buffer = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        # phonememode: ascii names, separator '|' between phonemes (bits 8-23).
        mode = ord("|") << 8
        groups: list[list[str]] = []
        with _LOCK:
            while pointer.value:
                out = self._lib.espeak_TextToPhonemes(ctypes.byref(pointer), CHARS_UTF8, mode)
                if not out:
                    break
                for group in out.decode("utf-8").split():
                    names = [_strip_stress(p) for p in group.split("|")]
                    names = [p for p in names if p]
                    if names:
                        groups.append(names)
        return groups

    @staticmethod
    def _check(code: int, what: str) -> None:
        if code != EE_OK:
            raise EspeakError(f"espeak-ng failed on {what} (error {code})")


def _libc() -> ctypes.CDLL:
    if "libc" not in _LIBC:
        _LIBC["libc"] = ctypes.CDLL(ctypes.util.find_library("c") or None)
    return _LIBC["libc"]


_LIBC: dict = {}


def _strip_stress(name: str) -> str:
    return name.replace("'", "").replace(",", "").replace("=", "")


def _on_synth(wav, num_samples, events) -> int:
    sink = _STATE.get("sink")
    if sink is None:
        return 0
    if num_samples > 0 and wav:
        sink["chunks"].append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    i = 0
    while events[i].type != EVENT_LIST_TERMINATED:
        e = events[i]
        name = ""
        if e.type == EVENT_PHONEME:
            name = bytes(e.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
        if e.type in (EVENT_WORD, EVENT_PHONEME, EVENT_SENTENCE, EVENT_END):
            sink["events"].append(Event(e.type, e.text_position, e.length, e.sample, name))
        i += 1
    return 0
