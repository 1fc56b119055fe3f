"""The model ids the compatibility routes offer, and what any `model` string means.

Three ids: the writer's, the vision model's, and `pictale` (the pipeline: images in the last
user turn are described first, then the writer answers with the descriptions as scene
context). Clients send all kinds of names (SillyTavern's captioning sends
`koboldcpp_current`, others the Hugging Face id or its last part); a name that is neither
model's id, nor its last path segment, case aside, is never an error: it means the vision
model for a question about one picture (one user turn, one image: what captioning tools
send), else `pictale`. The writer asked for with images attached also describes them first:
it cannot see them itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pictale_server.engine.base import Engine

PIPELINE_MODEL = "pictale"

Target = Literal["writer", "vision"]


@dataclass(frozen=True)
class ModelChoice:
    id: str  # the id answers name (OpenAI echoes the model)
    target: Target  # which model answers


def _matches(name: str, model_id: str) -> bool:
    name, model_id = name.strip().lower(), model_id.lower()
    return name == model_id or name == model_id.rsplit("/", 1)[-1]


def resolve_model(name: str | None, engine: Engine, *, a_question_about_one_picture: bool = False) -> ModelChoice:
    """`a_question_about_one_picture`: the request is one user turn with one image, as
    captioning tools send it; an unknown name then means the vision model, which answers
    about pictures itself (SillyTavern's captioning names no model pictale knows)."""
    if name and _matches(name, engine.vision_id):
        return ModelChoice(engine.vision_id, "vision")
    if name and _matches(name, engine.writer_id):
        return ModelChoice(engine.writer_id, "writer")
    if a_question_about_one_picture and not (name and _matches(name, PIPELINE_MODEL)):
        return ModelChoice(engine.vision_id, "vision")
    return ModelChoice(PIPELINE_MODEL, "writer")


def model_ids(engine: Engine) -> list[tuple[str, str]]:
    """(id, what it is) for each model offered, the default first."""
    return [
        (PIPELINE_MODEL, "the pipeline: pictures are described, then the writer answers"),
        (engine.writer_id, "the writer"),
        (engine.vision_id, "the vision model"),
    ]
