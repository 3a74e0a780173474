"""What each image model takes: one capability table, read by the options, the autocomplete, the
doctor and the cost estimate.

Sources (cited per row below):
- SDK: `openai` 3.63, `openai/types/responses/tool_param.py` `ImageGeneration` (the docstrings of
  `model`, `size`, `quality`, `background`, `output_format`, `complexity`, `frame_count`,
  `frame_duration_ms`, `input_fidelity`, `input_image_mask`, `svg`), `openai/types/image_model.py`
  (retired models) and `openai/types/image_generate_params.py` (`frame_count` 2-16; SVG takes no
  partial images and no compression).
- Model pages: developers.openai.com/api/docs/models/gpt-image-2.6-sunburst (prices $5 text in,
  $8 image in, $30 image out per 1M tokens; "complexity setting, markup edits, SVG output and
  animated GIF output"); relays' launch notes for 2.5/2.6 ("token prices match gpt-image-2").
- GIF frame budget: the frames are drawn as one sheet that shares one image's pixel budget
  (8,294,400 pixels: square frames up to 960 px for 2-9 frames, 816 for 10-12, 720 for 13-16),
  measured and published by an API relay (apiyi "GPT Image 2.6 GIF size table", 2026-11-09).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BASE_QUALITIES = ("auto", "low", "medium", "high")  # SDK `quality`: every GPT image model
EXTRA_QUALITIES = ("xhigh", "max")  # SDK `quality`: the 2.5 models only
STILL_FORMATS = ("png", "jpeg", "webp")
COMPLEXITIES = ("low", "medium", "high")  # SDK `complexity`
# GIF (SDK `frame_count`: 2 to 16, default 9; `frame_duration_ms`: default 200, rounded to
# 10 ms, the encoded delay capped at 655,350 ms)
MIN_FRAMES, MAX_FRAMES, DEFAULT_FRAMES = 2, 16, 9
DEFAULT_FRAME_MS, MAX_FRAME_MS, FRAME_MS_STEP = 200, 655_350, 10
GIF_SHEET_PIXELS = 8_294_400  # all frames together (relay-measured, see above)
MASK_NAME = "mask.png"  # the input image of a turn that is its inpainting mask (the last one)
GPT_IMAGE_2_PRICES = {"text_input": 5.00, "image_input": 8.00, "image_output": 30.00}
_SNAPSHOT_RE = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class ImageModelSpec:
    """One image model's capabilities and published prices (USD per 1M tokens)."""

    name: str
    custom_sizes: bool = False  # arbitrary WIDTHxHEIGHT (else the presets and auto)
    qualities: tuple[str, ...] = BASE_QUALITIES
    transparent: str = "yes"  # yes | preview | no
    formats: tuple[str, ...] = STILL_FORMATS  # with gif / svg where the model draws them
    masks: bool = True  # `input_image_mask` (inpainting)
    complexity: bool = False
    input_fidelity: tuple[str, ...] = ()  # values the model takes; () = omit it
    prices: dict[str, float] = field(default_factory=dict)
    retired: str | None = None  # the date the SDK says the model was shut down

    @property
    def gif(self) -> bool:
        return "gif" in self.formats

    @property
    def svg(self) -> bool:
        return "svg" in self.formats

    def features(self) -> list[str]:
        """Short names of what the model takes beyond the basics (for the doctor)."""
        found = ["custom sizes"] if self.custom_sizes else ["preset sizes only"]
        found += [f"quality {q}" for q in self.qualities if q in EXTRA_QUALITIES]
        found.append({"yes": "transparent background", "preview": "transparent background "
                      "(preview)", "no": "no transparent background"}[self.transparent])
        found += [f for f in ("gif", "svg") if f in self.formats]
        found += ["masks"] if self.masks else []
        found += ["complexity"] if self.complexity else []
        return found


_SPECS = [
    # SDK `model`: "gpt-image-1 was shut down on October 23, 2026"; prices from its model page
    ImageModelSpec("gpt-image-1", retired="2026-10-23", input_fidelity=("high", "low"),
                   prices={"text_input": 5.00, "image_input": 10.00, "image_output": 40.00}),
    # SDK `input_fidelity`: "gpt-image-1-mini supports only low"; prices from its model page
    ImageModelSpec("gpt-image-1-mini", input_fidelity=("low",),
                   prices={"text_input": 2.00, "image_input": 2.50, "image_output": 8.00}),
    # SDK `input_fidelity`: high and low; output $32 from its $0.133 per high 1024x1024 image
    ImageModelSpec("gpt-image-1.5", input_fidelity=("high", "low"),
                   prices={"text_input": 5.00, "image_input": 8.00, "image_output": 32.00}),
    # SDK `size`: custom sizes; `background`: transparent "in preview"; `input_fidelity`: omit
    ImageModelSpec("gpt-image-2", custom_sizes=True, transparent="preview",
                   prices=GPT_IMAGE_2_PRICES),
    # SDK `size` (custom), `quality` (xhigh, max), `background` (transparent) name the 2.5 models
    *(ImageModelSpec(name, custom_sizes=True, qualities=BASE_QUALITIES + EXTRA_QUALITIES,
                     prices=GPT_IMAGE_2_PRICES)
      for name in ("gpt-image-2.5-sunburst", "gpt-image-2.5-flare")),
    # 2.6: presets only (the SDK's `size` does not name them for custom sizes), GIF, SVG and
    # complexity (the 2.6 model page), gpt-image-2's token prices (the 2.6 model page)
    *(ImageModelSpec(name, formats=(*STILL_FORMATS, "gif", "svg"), complexity=True,
                     prices=GPT_IMAGE_2_PRICES)
      for name in ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare")),
    # SDK lists it without a capability; no published price: priced conservatively
    ImageModelSpec("chatgpt-image-latest", transparent="no"),
    # SDK `ImageModel`: "dall-e-2", "dall-e-3" retired on May 12, 2026
    ImageModelSpec("dall-e-2", retired="2026-05-12", masks=False),
    ImageModelSpec("dall-e-3", retired="2026-05-12", masks=False),
]
MODELS: dict[str, ImageModelSpec] = {spec.name: spec for spec in _SPECS}
DEFAULT_IMAGE_MODEL = "gpt-image-2"  # pinned: sizes and prices were first written for it


def base_name(model: str) -> str:
    """`gpt-image-2-2026-04-21` → `gpt-image-2`: a dated snapshot follows its model."""
    return _SNAPSHOT_RE.sub("", model.strip().lower())


def spec_of(model: str | None) -> ImageModelSpec:
    """The capabilities of `model` (None: the pinned default). An unknown model gets the
    common denominator (presets, base qualities, still formats), so nothing it may refuse
    is sent."""
    name = base_name(model or DEFAULT_IMAGE_MODEL)
    return MODELS.get(name) or ImageModelSpec(name, transparent="no")


def retired_line(model: str) -> str | None:
    """One line saying `model` is shut down and what to use, or None."""
    spec = MODELS.get(base_name(model))
    if spec is None or spec.retired is None:
        return None
    return (f"{model} was shut down on {spec.retired} (the openai SDK says so): use "
            f"gpt-image-2, gpt-image-2.5-sunburst or gpt-image-2.5-flare")


def gif_frame_fits(width: int, height: int, frames: int) -> bool:
    """Whether `frames` frames of `width`x`height` fit the GIF sheet's pixel budget."""
    return frames * width * height <= GIF_SHEET_PIXELS
