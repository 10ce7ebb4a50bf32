"""Reader options: the ``reader_options`` of :class:`~evalkit.config.RunConfig` and
:class:`~evalkit.config.EvaluateJobConfig` (a spec's ``[reader_options]`` table, the ``--label-file``
... options), checked by name and type when the config is built, before any file is read.

The names and types are those :func:`evalkit.data.readers.read` and
:func:`evalkit.images.lazy.read_image_dataset` take. An unknown name or a value of the wrong type is
a pydantic error located at ``reader_options.<name>`` (a spec names its ``file:line:``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this TypedDict on Python < 3.12


def _text(v: Any) -> Any:
    if isinstance(v, os.PathLike):  # the Python API may give a label file / image root as a Path
        v = os.fspath(v)
    if not isinstance(v, str):
        raise PydanticCustomError("string_type", "expected a string")
    return v


_EXPECTED = {"label_file": "a MULAN label XML file", "image_root": "a folder of images",
             "label_prefix": "a prefix of the label columns", "label_list_column": "a column name",
             "image_column": "a column name"}


def _given(v: Any, info) -> Any:
    """A file, folder or column name: a string that is not empty (``""`` is not "not given")."""
    v = _text(v)
    if not v.strip():
        raise PydanticCustomError("blank", "expected {what}", {"what": _EXPECTED.get(info.field_name, "a name")})
    return v


def _names(v: Any) -> Any:
    if isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        return v
    raise PydanticCustomError("names_type", 'expected names as a string "a,b" or a list of strings ["a", "b"]')


def _whole(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
    elif isinstance(v, int) and not isinstance(v, bool):
        return v
    raise PydanticCustomError("int_type", "expected an integer number of labels")


_Text = Annotated[str, BeforeValidator(_text)]
_Given = Annotated[str, BeforeValidator(_given)]
_Names = Annotated[str | list[str], BeforeValidator(_names)]


@with_config(ConfigDict(extra="forbid"))
class ReaderOptions(TypedDict, total=False):
    """The reader options a data file may take (see ``evalkit datasets``)."""

    label_file: _Given
    meka_labels: Annotated[int, BeforeValidator(_whole)]
    label_columns: _Names
    label_prefix: _Given
    label_list_column: _Given
    label_sep: _Text
    drop_columns: _Names
    image_column: _Given
    image_root: _Given
    empty_label: _Text


#: reader options a data file may take (``--label-file`` ...), in the order ``evalkit datasets`` lists them
READER_OPTIONS: tuple[str, ...] = tuple(ReaderOptions.__annotations__)

#: the problem of an unknown reader option (what a spec error says after ``reader_options.NAME:``)
UNKNOWN_OPTION = f"unknown reader option; expected one of {', '.join(READER_OPTIONS)}"
