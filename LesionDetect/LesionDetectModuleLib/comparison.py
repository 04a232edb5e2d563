"""The files written by ``lesiondetect compare PRIOR CURRENT`` → the scene: the current scan's results with their
change, new lesions in their own colour, and the prior scan shown aligned under the registration's transform.

``prior_to_current.tfm`` is an ITK transform (current LPS point → prior point, ITK's resampling sense); Slicer's
transform reader turns it into a linear transform node whose *transform to parent* moves the prior onto the
current scan, in RAS (``change.json`` holds the same matrix as ``registration.prior_to_current_ras``). Both scans
were written without their parent transforms (their own IJK→RAS only), so the transform node goes under the
current volume's parent transform, and the prior volume (with its own results, if any) under the transform node.

All or nothing: ``change.json`` is read and the transform file loaded before `results.loadResults` (itself all or
nothing) replaces the current volume's results; any failure removes what was made, and the scene is as it was.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import slicer

from LesionDetectLib.compare import CLASSES
from LesionDetectLib.compare.output import CHANGE_FORMAT, COLORS

from . import results
from .errors import ResultsError
from .results import DetectionNodes

CURRENT_STEM = "current"
TRANSFORM_FILE = "prior_to_current.tfm"
CHANGE_FILE = "change.json"
CHANGE_COLUMN = "change"
NEW = "new"
SUMMARY_ATTRIBUTE = "LesionDetect.ChangeSummary"
"""On the current results' table: the comparison's summary (JSON), which the panel shows with the results."""
PRIOR_ATTRIBUTE = "LesionDetect.PriorVolumeID"
"""On the transform node: the prior volume it aligns (and on the table: the prior its changes are since)."""


class ComparisonNodes(NamedTuple):
    """What a comparison put into the scene: the current results, the prior's transform and the summary."""

    nodes: DetectionNodes
    transform: object
    summary: dict


def loadComparison(outputFolder: str, currentVolume, priorVolume, showIn3D: bool = False) -> ComparisonNodes:
    """Load a comparison's files (see the module docstring); `ResultsError`, with the scene unchanged, on failure."""
    try:
        document = readChangeDocument(os.path.join(outputFolder, CHANGE_FILE))
        checkChangeColumn(os.path.join(outputFolder, f"{CURRENT_STEM}.lesions.csv"))
        transform = slicer.util.loadTransform(os.path.join(outputFolder, TRANSFORM_FILE))
    except (OSError, ValueError, RuntimeError) as error:
        raise ResultsError(f"the comparison's results could not be loaded, the scene is unchanged: {error}") from error
    try:
        nodes = results.loadResults(outputFolder, CURRENT_STEM, currentVolume, showIn3D)
    except Exception:
        slicer.mrmlScene.RemoveNode(transform)
        raise
    summary = dict(document["summary"], counts={name: document["summary"]["counts"][name] for name in CLASSES})
    nodes.table.SetAttribute(SUMMARY_ATTRIBUTE, json.dumps(summary))
    nodes.table.SetAttribute(PRIOR_ATTRIBUTE, priorVolume.GetID())
    alignPrior(transform, currentVolume, priorVolume)
    showChanges(nodes)
    return ComparisonNodes(nodes, transform, summary)


def readChangeDocument(path: str) -> dict:
    """``change.json``, checked to be a comparison with counts for every class; ValueError otherwise."""
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    if not isinstance(document, dict) or document.get("format") != CHANGE_FORMAT:
        raise ValueError(f"{os.path.basename(path)} is not a LesionDetect change table")
    counts = (document.get("summary") or {}).get("counts") or {}
    if any(not isinstance(counts.get(name), int) for name in CLASSES):
        raise ValueError(f"{os.path.basename(path)} lacks the count of lesions per change")
    return document


def checkChangeColumn(csvPath: str) -> None:
    columns, rows = results.readLesionTable(csvPath)
    if CHANGE_COLUMN not in columns or any(row[CHANGE_COLUMN] not in CLASSES for row in rows):
        raise ValueError(f"{os.path.basename(csvPath)} lacks a valid '{CHANGE_COLUMN}' column")


def alignPrior(transform, currentVolume, priorVolume) -> None:
    """Name and place the transform next to the current volume, under its parent transform, and put the prior
    volume and the prior's own results under it; an earlier comparison's transform of that prior goes."""
    shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
    earlier = [node for node in slicer.util.getNodesByClass("vtkMRMLLinearTransformNode")
               if node.GetAttribute(PRIOR_ATTRIBUTE) == priorVolume.GetID()]
    transform.SetName(f"{priorVolume.GetName()} to {currentVolume.GetName()}")
    transform.SetAttribute(PRIOR_ATTRIBUTE, priorVolume.GetID())
    transform.SetAttribute(results.INPUT_VOLUME_ATTRIBUTE, currentVolume.GetID())
    results.detachStorage(transform)
    transform.SetAndObserveTransformNodeID(currentVolume.GetTransformNodeID())
    shNode.SetItemParent(shNode.GetItemByDataNode(transform),
                         shNode.GetItemParent(shNode.GetItemByDataNode(currentVolume)))
    priorResults = results.findResults(priorVolume)
    for node in (priorVolume, *((priorResults.segmentation, priorResults.points) if priorResults else ())):
        node.SetAndObserveTransformNodeID(transform.GetID())
    for node in earlier:
        slicer.mrmlScene.RemoveNode(node)


def showChanges(nodes: DetectionNodes) -> None:
    """New lesions in their own colour: their segments, and their control points (drawn unselected, in the point
    list's colour, while the other points keep the selected colour)."""
    segmentation = nodes.segmentation.GetSegmentation()
    pointsDisplay = nodes.points.GetDisplayNode()
    if pointsDisplay is not None:
        pointsDisplay.SetColor(*COLORS[NEW])
    for row in results.lesionRows(nodes.table):
        isNew = row.get(CHANGE_COLUMN) == NEW
        segmentId = segmentation.GetSegmentIdBySegmentName(row["name"])
        if isNew and segmentId:
            segmentation.GetSegment(segmentId).SetColor(*COLORS[NEW])
        index = results.controlPointIndex(nodes.points, row["label"])
        if index >= 0:
            nodes.points.SetNthControlPointSelected(index, not isNew)


def changeSummary(tableNode) -> dict | None:
    """The summary of the comparison that made these results, or None if they are not a comparison's."""
    text = tableNode.GetAttribute(SUMMARY_ATTRIBUTE) if tableNode is not None else None
    return json.loads(text) if text else None


def summaryText(summary: dict) -> str:
    """``1 new, 0 enlarging, 2 stable, 0 shrinking, 0 resolved since the prior scan …`` for the panel."""
    counts = summary["counts"]
    listed = ", ".join(f"{counts[name]} {name}" for name in CLASSES if name != "outside" or counts[name])
    uncertain = sum((summary.get("low_certainty") or {}).values())
    return (f"Since the prior scan: {listed}.\nTotal lesion volume {summary['prior_total_volume_mm3']:.0f} → "
            f"{summary['current_total_volume_mm3']:.0f} mm³; {uncertain} change(s) of low certainty.")
