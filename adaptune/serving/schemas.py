"""The predict request and response, in Vertex AI's format.

A request is ``{"instances": [{"prompt": "..."}], "parameters": {"maxOutputTokens": 64,
"temperature": 0}}``; parameter names are accepted as Vertex AI spells them (camelCase) or as
Hugging Face does (``max_new_tokens``). Unknown fields and wrong types are refused, so a typo is
an error rather than a silent default.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class Instance(BaseModel):
    """One prompt.

    Attributes:
        prompt: The user's text; the version's prompt template is put around it.
        raw: Send ``prompt`` to the model as it is, without the template.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str
    raw: bool = False


class Parameters(BaseModel):
    """Decoding settings for every instance of the request."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    max_new_tokens: int | None = Field(
        default=None,
        ge=1,
        validation_alias=AliasChoices("maxOutputTokens", "max_new_tokens", "maxNewTokens"),
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(
        default=1.0, gt=0.0, le=1.0, validation_alias=AliasChoices("topP", "top_p")
    )
    top_k: int = Field(default=0, ge=0, validation_alias=AliasChoices("topK", "top_k"))
    raw_prompt: bool = Field(
        default=False, validation_alias=AliasChoices("rawPrompt", "raw_prompt")
    )


class PredictRequest(BaseModel):
    """``POST .../endpoints/{model}:predict`` body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instances: list[Instance] = Field(min_length=1)
    parameters: Parameters = Field(default_factory=Parameters)


class Prediction(BaseModel):
    """One answer (``content``, as Vertex AI's text models name it)."""

    content: str


class PredictResponse(BaseModel):
    """Vertex AI's ``PredictResponse`` fields.

    Attributes:
        predictions: One per instance, in order.
        deployedModelId: Which deployment answered (``AIP_DEPLOYED_MODEL_ID``, or ``model@vN``).
        model: The registry model name.
        modelDisplayName: The same name.
        modelVersionId: The version number that answered, as a string.
    """

    predictions: list[Prediction]
    deployedModelId: str
    model: str
    modelDisplayName: str
    modelVersionId: str
