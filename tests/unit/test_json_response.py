"""A response model leaves as its pydantic-core JSON, with the status the route chose."""

from __future__ import annotations

from app.http.validation import json_response
from app.src.api.common.models.base import StrictModel


class Receipt(StrictModel):
    id: str
    amount: int


async def test_a_model_is_answered_as_its_json_with_the_status_given() -> None:
    response = json_response(Receipt(id="r_1", amount=5), 202)
    assert (response.status_code, response.content_type) == (202, "application/json")
    assert await response.get_data(as_text=False) == b'{"id":"r_1","amount":5}'
    assert json_response(Receipt(id="r_2", amount=0)).status_code == 200
