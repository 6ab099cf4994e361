from heartgate.release.promotion import conflict_message


def test_no_conflict_when_production_is_where_the_gate_saw_it():
    assert conflict_message("3", "2", "2") is None
    assert conflict_message("1", None, None) is None


def test_conflict_names_both_versions():
    assert conflict_message("3", "1", "2").startswith("@production moved from version 1 to version 2 after the gate compared version 3 with it; not promoted")
    assert "moved from none to version 4" in conflict_message("5", None, "4")
