"""Batch GET responses that the simulator does not produce: item errors, odd keys, gaps.

A stub with python-ovh's `get(target)` replaces the client and returns fixed responses.
"""

import ovh
import pytest

from vscope_pipeline.ovh.batch import ObjectFetcher, batch_support
from vscope_pipeline.ovh.reader import ApiReader, ObjectRef, OvhRequestError, OvhResponseError

LIST_PATH = "/dedicatedCloud/pcc-1/datacenter/7/vm"
REFS = [ObjectRef("pcc-1", 7, "vm", vm_id) for vm_id in (11, 12, 13)]
BATCH = f"{LIST_PATH}/11,12,13?batch=,"


class StubClient:
    def __init__(self, answers):
        self.answers = answers
        self.targets = []

    def get(self, target):
        self.targets.append(target)
        answer = self.answers[target]
        if isinstance(answer, Exception):
            raise answer
        return answer


def vm(vm_id):
    return {"vmId": vm_id, "moRef": f"vm-{vm_id}"}


def fetch(answers, mode="auto"):
    client = StubClient(answers)
    fetcher = ObjectFetcher(ApiReader(client), mode=mode, batch_size=50)
    return fetcher.fetch(REFS), client, fetcher


def test_integer_keys_and_not_found_items():
    items = [
        {"key": 11, "value": vm(11), "error": None},
        {"key": 12, "value": None, "error": "The requested object (vmId = 12) does not exist"},
        {"key": 13, "value": vm(13), "error": None},
    ]
    found, client, fetcher = fetch({BATCH: items})
    assert found == {REFS[0]: vm(11), REFS[2]: vm(13)}
    assert client.targets == [BATCH]
    assert fetcher.used_batch is True
    assert batch_support(client) is True


def test_ids_missing_from_answer_fetched_singly():
    items = [{"key": "11", "value": vm(11), "error": None}]
    answers = {
        BATCH: items,
        f"{LIST_PATH}/12": vm(12),
        f"{LIST_PATH}/13": ovh.ResourceNotFoundError("gone"),
    }
    found, client, _ = fetch(answers)
    assert found == {REFS[0]: vm(11), REFS[1]: vm(12)}
    assert client.targets == [BATCH, f"{LIST_PATH}/12", f"{LIST_PATH}/13"]


def test_item_error_other_than_not_found_raises():
    items = [
        {"key": "11", "value": None, "error": "Internal server error"},
        {"key": "12", "value": vm(12), "error": None},
        {"key": "13", "value": vm(13), "error": None},
    ]
    with pytest.raises(OvhRequestError) as caught:
        fetch({BATCH: items})
    assert str(caught.value) == f"GET {BATCH} failed for vm 11: Internal server error"
    assert caught.value.path == BATCH


def test_item_without_value_or_error_raises():
    items = [{"key": str(ref.object_id), "value": None, "error": None} for ref in REFS]
    with pytest.raises(OvhResponseError) as caught:
        fetch({BATCH: items})
    assert str(caught.value) == (
        f"GET {BATCH} returned an item for vm 11 without an error or an object value"
    )


def test_object_answer_means_no_batch_support():
    # A server without batch mode that ignores the query returns one object or an error.
    answers = {BATCH: vm(11), **{f"{LIST_PATH}/{ref.object_id}": vm(ref.object_id) for ref in REFS}}
    found, client, fetcher = fetch(answers)
    assert list(found) == REFS
    assert batch_support(client) is False
    assert fetcher.used_batch is False
    assert client.targets == [BATCH] + [ref.path for ref in REFS]


def test_never_mode_skips_batch():
    answers = {ref.path: vm(ref.object_id) for ref in REFS}
    found, client, _ = fetch(answers, mode="never")
    assert list(found) == REFS
    assert client.targets == [ref.path for ref in REFS]
    assert batch_support(client) is None


def test_batch_404_falls_back_without_learning_when_forced():
    answers = {BATCH: ovh.ResourceNotFoundError("gone"), **{r.path: vm(r.object_id) for r in REFS}}
    found, client, _ = fetch(answers, mode="always")
    assert list(found) == REFS
    assert batch_support(client) is None


def test_server_error_on_batch_raises():
    with pytest.raises(OvhRequestError) as caught:
        fetch({BATCH: ovh.APIError("Internal server error")})
    assert str(caught.value) == (f"GET {BATCH} failed with APIError: Internal server error")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"mode": "sometimes", "batch_size": 50},
            "batch mode 'sometimes' is not valid: use 'auto', 'always' or 'never'",
        ),
        ({"mode": "auto", "batch_size": 0}, "batch_size 0 is not valid: use a positive integer"),
    ],
)
def test_fetcher_options_checked(options, message):
    with pytest.raises(ValueError, match="is not valid") as caught:
        ObjectFetcher(ApiReader(StubClient({})), **options)
    assert str(caught.value) == message
