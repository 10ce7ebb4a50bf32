"""Image tables: the image column, paths resolved inside --image-root, ChestX-ray14-style label lists."""

from __future__ import annotations

import os

import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.images.tables import read_image_table


def _write(path, text: str):
    path.write_text(text)
    return path


def test_chestxray14_style_table_gives_multi_hot_labels_without_no_finding(tmp_path):
    csv = _write(tmp_path / "Data_Entry_2017.csv",
                 "Image Index,Finding Labels,Patient Age\n"
                 "a.png,Atelectasis|Effusion,58\n"
                 "b.png,No Finding,41\n"
                 "c.png,Effusion,60\n"
                 "sub/d.png,Cardiomegaly|No Finding,33\n")
    t = read_image_table(csv, image_column="Image Index", label_list_column="Finding Labels", label_sep="|",
                         empty_label="No Finding")
    assert t.label_names == ["Atelectasis", "Cardiomegaly", "Effusion"]
    np.testing.assert_array_equal(t.Y, [[1, 0, 1], [0, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert t.paths == [str(tmp_path / p) for p in ("a.png", "b.png", "c.png", "sub/d.png")]
    assert t.rows.tolist() == [1, 2, 3, 4] and t.root == tmp_path.resolve()


def test_path_column_is_the_default_and_image_root_is_honoured(tmp_path):
    (tmp_path / "imgs").mkdir()
    csv = _write(tmp_path / "t.csv", "path,cat,dog\nx.png,1,0\ny.png,0,1\n")
    t = read_image_table(csv, image_root=str(tmp_path / "imgs"), label_columns="cat,dog")
    assert t.paths == [str(tmp_path / "imgs" / "x.png"), str(tmp_path / "imgs" / "y.png")]
    np.testing.assert_array_equal(t.Y, [[1, 0], [0, 1]])
    with pytest.raises(InputError, match=r"^--image-column 'file': not a column of .*t\.csv"):
        read_image_table(csv, image_column="file", label_columns="cat,dog")
    other = _write(tmp_path / "u.csv", "file,cat\nx.png,1\n")
    with pytest.raises(InputError, match=r"u\.csv: which column holds the image paths\? pass --image-column"):
        read_image_table(other, label_columns="cat")


@pytest.mark.parametrize("cell", ["../outside.png", "imgs/../../outside.png", "/etc/passwd"])
def test_paths_escaping_the_image_root_are_refused_naming_the_row(tmp_path, cell):
    root = tmp_path / "root"
    root.mkdir()
    csv = _write(root / "t.csv", f"path,a\nok.png,1\n{cell},0\n")
    with pytest.raises(InputError, match=rf"t\.csv: row 2: image path '{cell}' is outside --image-root"):
        read_image_table(csv, label_columns="a")


def test_a_symlink_pointing_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", root / "link.png")
    csv = _write(root / "t.csv", "path,a\nlink.png,1\n")
    with pytest.raises(InputError, match=r"row 1: image path 'link.png' is outside --image-root"):
        read_image_table(csv, label_columns="a")


def test_empty_path_and_bad_label_values_are_reported_in_one_line(tmp_path):
    csv = _write(tmp_path / "t.csv", "path,a\nx.png,1\n,0\n")
    with pytest.raises(InputError, match=r"t\.csv: row 2: empty image path"):
        read_image_table(csv, label_columns="a")
    csv = _write(tmp_path / "v.csv", "path,a\nx.png,yes\n")
    with pytest.raises(InputError, match=r"label column 'a' must hold 0 or 1, found 'yes' \(data row 1\)"):
        read_image_table(csv, label_columns="a")
    with pytest.raises(InputError, match="pass exactly one of --label-columns"):
        read_image_table(csv)
