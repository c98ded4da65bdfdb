"""What differs between PostgreSQL majors (utils.pg.versions)."""

import pytest

from saltext_hamn.utils.pg import versions


@pytest.mark.parametrize("text, major", [("15.18", 15), ("18.6", 18), ("18beta1", 18), ("12", 12),
                                         ("unknown", None), (None, None), ("", None)])
def test_major_of(text, major):
    assert versions.major_of(text) == major


@pytest.mark.parametrize("major, enabled, args", [
    (15, True, ["--data-checksums"]),
    (15, False, []),  # off is 15's default; --no-data-checksums does not exist before 18
    (17, False, []),
    (18, True, ["--data-checksums"]),
    (18, False, ["--no-data-checksums"]),  # 18 would turn them on by itself
    (19, False, ["--no-data-checksums"]),
])
def test_initdb_says_checksums_on_or_off_whatever_the_default(major, enabled, args):
    assert versions.initdb_checksum_args(major, enabled) == args


def test_data_dir_major(tmp_path):
    assert versions.data_dir_major(str(tmp_path)) is None
    (tmp_path / "PG_VERSION").write_text("18\n")
    assert versions.data_dir_major(str(tmp_path)) == 18
    (tmp_path / "PG_VERSION").write_text("garbage\n")
    assert versions.data_dir_major(str(tmp_path)) is None


@pytest.mark.parametrize("text, version", [
    ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", "15.18"),
    ("postgres (PostgreSQL) 18.6\n", "18.6"),
    ("something else\n", None), ("", None), (None, None),
])
def test_version_in_postgres_version_output(text, version):
    assert versions.version_in(text) == version
