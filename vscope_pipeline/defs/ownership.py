"""The owners shown on every asset in the Dagster UI: change them here, in one place.

Dagster accepts an e-mail address or `team:<name>` as an owner.
"""

ASSET_OWNERS: list[str] = ["team:vscope-data"]
