"""A live-updating notebook view of :func:`vidtrans.live.run_live` (ipywidgets).

>>> view = LiveView(); display(view.widget)                          # doctest: +SKIP
>>> run_live("talk.wav", options=opts, on_update=view.update, stop=view.stop_event)  # doctest: +SKIP

Committed words appear in black, one colour per speaker; the tentative tail
(which may still change) in grey italics; a status line shows audio time,
latency, decode load and the model in use; bars show talk time per speaker.
A Stop button ends the run cleanly (everything committed is written).
"""

from __future__ import annotations

import html
import threading

from ..errors import MissingDependencyError

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


class LiveView:
    """ipywidgets panel: transcript (committed + tentative), status line, talk time, Stop button."""

    def __init__(self, max_words: int = 400):
        try:
            import ipywidgets as widgets
        except ImportError as exc:
            raise MissingDependencyError("ipywidgets", extra="notebooks", purpose="the live notebook view") from exc
        self.max_words = max_words
        self.stop_event = threading.Event()
        self.transcript = widgets.HTML(value="<i>waiting for speech…</i>")
        self.status = widgets.HTML(value="")
        self.talk = widgets.HTML(value="")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="warning")
        self.stop_button.on_click(lambda _: self.stop_event.set())
        self.widget = widgets.VBox([widgets.HBox([self.stop_button, self.status]), self.transcript, self.talk])
        self._words: list = []
        self._colour: dict[str, str] = {}
        #: the last state seen (for printing after a headless run)
        self.state = None

    def _c(self, speaker: str | None) -> str:
        if speaker is None:
            return "#333"
        if speaker not in self._colour:
            self._colour[speaker] = _COLOURS[len(self._colour) % len(_COLOURS)]
        return self._colour[speaker]

    def update(self, state) -> None:
        """``on_update`` callback of :func:`run_live`."""
        self.state = state
        self._words.extend(state.new_words)
        self._words = self._words[-self.max_words :]
        parts, last = [], object()
        for w in self._words:
            if w.speaker != last:
                parts.append(f'<br><b style="color:{self._c(w.speaker)}">{html.escape(w.speaker or "")}</b> ')
                last = w.speaker
            parts.append(f'<span style="color:{self._c(w.speaker)}">{html.escape(w.text)}</span>')
        if state.tentative:
            parts.append(f' <i style="color:#999">{html.escape(state.tentative)}</i>')
        self.transcript.value = "".join(parts) or "<i>waiting for speech…</i>"
        lat = "–" if state.latency_median is None else f"{state.latency_median:.1f} s"
        self.status.value = (
            f"{'finished' if state.finished else 'live'} · audio {state.audio_seconds:.1f} s · "
            f"{state.committed} words committed · median latency {lat} · decode load {state.decode_ratio:.2f} · "
            f"step {state.step:.1f} s · model {html.escape(state.model)}"
        )
        total = sum(state.talk_time.values()) or 1.0
        self.talk.value = "".join(
            f'<div style="margin:1px 0"><span style="display:inline-block;width:90px">{html.escape(k)}</span>'
            f'<span style="display:inline-block;height:10px;width:{int(300 * v / total)}px;background:{self._c(k)}"></span>'
            f" {v:.1f} s</div>"
            for k, v in state.talk_time.items()
        )
