"""`vscope-pipeline doctor`: check each step of a run once, before the first ingest.

Each check prints one line, `OK`, `WARN` or `FAIL`, and a failure prints what to fix on the
next line. First come the settings, then OVH APIv6 and OpenTSDB with the calls an ingest makes
first (api_checks.py), then where the data go (lake_checks.py). Nothing is changed, except that
a lake in a bucket gets one small probe object, deleted again when the key may delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from vscope_pipeline.defs.resources import OpenTSDBResource, OvhApiResource, VScopeSettingsResource
from vscope_pipeline.doctor.api_checks import (
    check_access_rules,
    check_clock,
    check_configuration,
    check_opentsdb,
    check_token,
    service_names,
)
from vscope_pipeline.doctor.lake_checks import check_bucket_lake, check_data_folder
from vscope_pipeline.doctor.result import CheckResult
from vscope_pipeline.settings import Settings


def run_doctor(out: TextIO) -> int:
    """Run every check, print one line each, and return 0, 1 (a check failed) or 2 (settings)."""
    results: list[CheckResult] = []

    def report(result: CheckResult) -> None:
        results.append(result)
        for line in result.lines():
            print(line, file=out, flush=True)

    configuration, settings = check_configuration()
    report(configuration)
    if settings is None:
        print("doctor: the configuration is invalid, so no request was sent", file=out)
        return 2

    if not _check_apis(settings, report):
        print("doctor: APIv6 cannot be reached, so its other checks were not run", file=out)
    report(check_data_folder(settings.data_dir))
    if settings.lake_bucket is not None:
        for result in check_bucket_lake(settings.lake, settings.workers):
            report(result)

    failed = [result for result in results if result.status == "FAIL"]
    warned = [result for result in results if result.status == "WARN"]
    print(
        f"doctor: {len(results) - len(failed) - len(warned)} OK, {len(warned)} warning(s), "
        f"{len(failed)} failure(s)",
        file=out,
    )
    return 1 if failed else 0


def _check_apis(settings: Settings, report: Callable[[CheckResult], None]) -> bool:
    """Run the APIv6 and OpenTSDB checks, and return False when APIv6 could not be reached."""
    settings_resource = VScopeSettingsResource()
    api = OvhApiResource(config=settings_resource)
    opentsdb = OpenTSDBResource(ovh_api=api)
    try:
        client = api.api_client()
        clock = check_clock(client)
        report(clock)
        if clock.blocking:
            return False
        report(check_access_rules(client, settings))
        services, listing = service_names(client, settings)
        report(listing)
        for service in services:
            token = check_token(api, settings, service)
            report(token)
            # Without a token there is nothing to query OpenTSDB with.
            if token.status != "FAIL":
                report(check_opentsdb(opentsdb, service))
    finally:
        opentsdb.close_clients()
    return True
