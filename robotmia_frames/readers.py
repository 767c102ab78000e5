"""The pinned module functions that read local data: a saved export, a dataset.

``read_export_file`` and ``read_parquet_dataset`` keep the signatures of
``design.md``. They take no connection settings: each is the :class:`Client`
method of the same name, called on a client built with none
(:func:`~robotmia_frames.client.on_a_new_client`), so that its signature and
overloads are written once, on the method.
"""

from __future__ import annotations

from .client import on_a_new_client

__all__ = ["read_export_file", "read_parquet_dataset"]

read_export_file = on_a_new_client(
    lambda client: client.read_export_file,
    __name__,
    """Read a saved export (``.jsonl`` or ``.jsonl.gz``, multi-member gzip included).

    Gives exactly what :func:`~robotmia_frames.read_robotmia_export` gives for the
    same lines. ``event`` keeps the rows of those events; with ``where`` (a ``where``
    expression, see ``docs/where.md``) only the rows it selects are returned, as the
    export's server-side filter would select them. ``progress`` as in
    :func:`~robotmia_frames.read_robotmia_export`: a bar counting parsed rows on a
    terminal when the read lasts over a second, or a callback. ``split_by``,
    ``sparse_columns``, ``sparse_threshold`` and ``max_memory`` as in
    :func:`~robotmia_frames.read_robotmia_export`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "export.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"time":1704067200,"n":1}}\\n')
        >>> df = read_export_file(p, project_timezone="Europe/Paris")
        >>> str(df["time"][0])
        '2023-12-31 23:00:00+00:00'
    """,
)

read_parquet_dataset = on_a_new_client(
    lambda client: client.read_parquet_dataset,
    __name__,
    """Read a dataset written by this library back as one table.

    Days with different column sets or types are unified by the same type policy;
    only the requested days (partition pruning), events and columns are read.
    ``where`` keeps the rows a ``where`` expression selects (see ``docs/where.md``),
    pushed down into each file's scan; its times are read in ``project_timezone``,
    else the timezone the dataset recorded when it was written.
    ``progress`` as in :func:`~robotmia_frames.read_robotmia_export`, counting days
    read. ``split_by``, ``sparse_columns``, ``sparse_threshold`` and ``max_memory`` as
    in :func:`~robotmia_frames.read_robotmia_export` (the memory is estimated from
    the files' footers).

    Example:
        >>> import tempfile
        >>> import robotmia_frames as rf
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> out = tempfile.mkdtemp()
        >>> with ExportServer(generate_events(30, days=3), api_secret="s") as srv:
        ...     _ = rf.export_to_parquet(out, "2024-01-01", "2024-01-03", api_secret="s",
        ...                              project_timezone="UTC", base_url=srv.url)
        >>> len(read_parquet_dataset(out, from_date="2024-01-02"))
        20
    """,
)
