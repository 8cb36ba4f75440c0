from vscope_pipeline.textable import format_table


def test_numbers_right_aligned_and_nulls():
    text = format_table(["name", "rows"], [("vms", 60), ("hosts", None), ("filers", 12345)])
    assert text.splitlines() == [
        "name     rows",
        "------  -----",
        "vms        60",
        "hosts    NULL",
        "filers  12345",
    ]


def test_empty_rows_keep_header():
    assert format_table(["a"], []) == "a\n-"
