"""The reader's review of one run's lesions, stored in the result nodes themselves so that it is saved with the
scene: the table's ``status``, ``comment`` and ``origin`` columns are the record (see `LesionDetectLib.review`), and
the segments and points show it (a rejected lesion's segment and point are hidden, never deleted; each segment's
``Segmentation.Status`` tag and each point's description say the status).

A lesion is named by its point label (``L1``…); its segment is the one named as the table row's ``name``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re

import slicer

from LesionDetectLib import review
from LesionDetectLib.writers.atomic import atomic_output, check_writable, staged_outputs

from .errors import DetectionError
from .results import DetectionNodes, controlPointIndex, lesionRows

REVIEW_TAG_PREFIX = "LesionDetect.Review."
SEGMENT_STATUS_TAG = "Segmentation.Status"
FILE_FORMATS = {"segmentation": "Segmentation (.seg.nrrd)", "points": "Markups JSON (.mrk.json)"}


def fileStem(name: str) -> str:
    """A node name as a plain file name: runs of other characters than letters, digits, ``.``, ``-`` → ``_``."""
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "lesions"


def reviewPaths(folder: str, stem: str) -> dict[str, str]:
    """Where `exportReviewedSet` writes: the detection's file names (a reviewed set loads as results) plus the
    reader's summary."""
    return {
        "segmentation": os.path.join(folder, f"{stem}.seg.nrrd"),
        "points": os.path.join(folder, f"{stem}.mrk.json"),
        "table_csv": os.path.join(folder, f"{stem}.lesions.csv"),
        "table_json": os.path.join(folder, f"{stem}.lesions.json"),
        "summary": os.path.join(folder, f"{stem}.review.txt"),
    }


def rowIndex(tableNode, label: str) -> int:
    """The table row of the lesion labelled ``label``; ValueError if there is none."""
    for index, row in enumerate(lesionRows(tableNode)):
        if row["label"] == label:
            return index
    raise ValueError(f"there is no lesion {label!r} in {tableNode.GetName()}")


def lesionReview(tableNode, label: str) -> dict[str, str]:
    """``{"status": …, "comment": …, "origin": …}`` of one lesion."""
    row = lesionRows(tableNode)[rowIndex(tableNode, label)]
    return {name: row[name] for name in review.REVIEW_COLUMNS}


def setStatus(nodes: DetectionNodes, label: str, status: str) -> None:
    _setCell(nodes, label, "status", review.check_status(status))


def setComment(nodes: DetectionNodes, label: str, comment: str) -> None:
    _setCell(nodes, label, "comment", " ".join(str(comment).split()))  # one line: it also goes into tags


def _setCell(nodes: DetectionNodes, label: str, column: str, value: str) -> None:
    table = nodes.table
    if not table.SetCellText(rowIndex(table, label), table.GetColumnIndex(column), value):
        raise ValueError(f"could not write the {column} of lesion {label} into {table.GetName()}")
    showReview(nodes)


def showReview(nodes: DetectionNodes) -> None:
    """Make segments and points show the table's review: rejected hidden, others shown; status in tags and
    descriptions."""
    segmentation = nodes.segmentation.GetSegmentation()
    displayNode = nodes.segmentation.GetDisplayNode()
    for row in lesionRows(nodes.table):
        visible = row["status"] != review.REJECTED
        segmentId = segmentation.GetSegmentIdBySegmentName(row["name"])
        segment = segmentation.GetSegment(segmentId) if segmentId else None
        if segment is not None:
            segment.SetTag(SEGMENT_STATUS_TAG, review.SLICER_SEGMENT_STATUS[row["status"]])
            for name in review.REVIEW_COLUMNS:
                segment.SetTag(REVIEW_TAG_PREFIX + name, row[name].replace("|", "/"))
            if displayNode is not None:
                displayNode.SetSegmentVisibility(segmentId, visible)
        index = controlPointIndex(nodes.points, row["label"])
        if index >= 0:
            nodes.points.SetNthControlPointVisibility(index, visible)
            nodes.points.SetNthControlPointDescription(index, pointDescription(row))


def pointDescription(row: dict) -> str:
    """``accepted (model): confidence 0.93, volume 420 mm3, diameter 9.1 mm; <comment>``."""
    measured = []
    if not math.isnan(_number(row.get("confidence_max"))):
        measured.append(f"confidence {_number(row['confidence_max']):.2f}")
    measured.append(f"volume {_number(row.get('volume_mm3')):.0f} mm3")
    measured.append(f"diameter {_number(row.get('longest_axial_diameter_mm')):.1f} mm")
    text = f"{row['status']} ({row['origin']}): {', '.join(measured)}"
    return f"{text}; {row['comment']}" if row["comment"] else text


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def reviewOrder(tableNode) -> list[str]:
    """Point labels in review order: most confident first (a lesion without a confidence last), then by row."""
    rows = lesionRows(tableNode)

    def key(indexed):
        confidence = _number(indexed[1].get("confidence_max"))
        return (math.isnan(confidence), -confidence if not math.isnan(confidence) else 0.0, indexed[0])

    return [row["label"] for _, row in sorted(enumerate(rows), key=key)]


def stepLesion(tableNode, currentLabel: str | None, step: int) -> str | None:
    """The lesion ``step`` places after ``currentLabel`` in `reviewOrder` (wrapping round); the first (step > 0)
    or last (step < 0) without a current lesion; None if there are no lesions."""
    order = reviewOrder(tableNode)
    if not order:
        return None
    if currentLabel not in order:
        return order[0] if step > 0 else order[-1]
    return order[(order.index(currentLabel) + step) % len(order)]


def tableColumns(tableNode) -> list[str]:
    table = tableNode.GetTable()
    return [table.GetColumn(index).GetName() for index in range(table.GetNumberOfColumns())]


def summary(tableNode) -> dict:
    """Counts and volumes by status (`LesionDetectLib.review.review_summary`)."""
    return review.review_summary(lesionRows(tableNode))


def exportReviewedSet(nodes: DetectionNodes, folder: str, stem: str) -> dict[str, str]:
    """Write the reviewed set into ``folder``, all files or none (`reviewPaths`): every lesion, rejected ones
    included and marked, each with its status, comment and origin. Returns the paths by kind."""
    showReview(nodes)
    paths = reviewPaths(folder, stem)
    columns, rows = tableColumns(nodes.table), lesionRows(nodes.table)
    texts = {"table_csv": review.review_csv_text(rows, columns), "table_json": review.review_json_text(rows, columns),
             "summary": review.summary_text(review.review_summary(rows))}
    check_writable(folder)
    with staged_outputs(folder) as staging:
        for kind in FILE_FORMATS:
            node = getattr(nodes, kind)
            temporary = str(staging.file(paths[kind]))
            if not slicer.util.exportNode(node, temporary, {"fileFormat": FILE_FORMATS[kind]}, world=False):
                raise OSError(f"Slicer could not write {node.GetName()} to {paths[kind]}")
        for kind, text in texts.items():
            staging.file(paths[kind]).write_text(text, encoding="utf-8", newline="")
    return paths


def dicomSourceFiles(volumeNode) -> list[str]:
    """The files of the DICOM series ``volumeNode`` was loaded from, as Slicer's DICOM database knows them."""
    uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    files = [database.fileForInstance(uid) for uid in uids] if database is not None else []
    if not uids or not all(files):
        raise DetectionError(f"'{volumeNode.GetName()}' was not loaded from Slicer's DICOM database, so there is no "
                             "source series for a DICOM Segmentation; load the series through the DICOM module.")
    return files


@contextlib.contextmanager
def segmentsLabelmapNode(nodes: DetectionNodes, volumeNode, segmentNames: list[str]):
    """A temporary label map node of the named segments on ``volumeNode``'s grid, values 1…n in the given order
    (where segments overlap, the later one wins), by Slicer's own export; removed afterwards."""
    import vtk

    segmentation = nodes.segmentation.GetSegmentation()
    segmentIds = vtk.vtkStringArray()
    for name in segmentNames:
        segmentIds.InsertNextValue(segmentation.GetSegmentIdBySegmentName(name))
    labelmapNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                nodes.segmentation, segmentIds, labelmapNode, volumeNode):
            raise DetectionError("The segments could not be exported as a label map.")
        yield labelmapNode
    finally:
        slicer.mrmlScene.RemoveNode(labelmapNode)


def writeLabelmapAndTable(nodes: DetectionNodes, volumeNode, rows: list[dict], folder: str) -> tuple[str, str]:
    """The segments of ``rows`` as one label map on ``volumeNode``'s grid (values 1…n in row order) and a lesion
    table whose ids are those values; returns both paths (uncompressed NRRD, CSV) in ``folder``."""
    labelmapPath = os.path.join(folder, "accepted.nrrd")
    with segmentsLabelmapNode(nodes, volumeNode, [row["name"] for row in rows]) as labelmapNode:
        if not slicer.util.exportNode(labelmapNode, labelmapPath, {"useCompression": 0,
                                                                   "fileFormat": "NRRD (.nrrd)"}, world=False):
            raise DetectionError(f"Could not write the accepted lesions to {folder}.")
    tablePath = os.path.join(folder, "accepted.lesions.csv")
    numbered = [{**row, "id": number} for number, row in enumerate(rows, start=1)]
    with open(tablePath, "w", encoding="utf-8", newline="") as file:
        file.write(review.review_csv_text(numbered, tableColumns(nodes.table)))
    return labelmapPath, tablePath


def publish(temporary: str, path: str) -> None:
    """Copy the finished file ``temporary`` to ``path`` atomically (its folder created if needed)."""
    import shutil

    check_writable(os.path.dirname(os.path.abspath(path)))
    with atomic_output(path) as staged:
        shutil.copyfile(temporary, staged)
