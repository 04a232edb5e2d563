"""The LesionDetect Slicer module, headless: its logic, widget and process runner against `slicer_double`.

A fake process runner stands in for ``PythonSlicer -m LesionDetectLib detect``: instead of a model it makes the
outputs from the image the module wrote (bright voxels = lesion), either with a small hand-written writer
("fixture") or with the real library's reader, post-processing and writers in-process ("library", skipped
until those exist). Geometry is checked end to end: the double writes the input NRRD the way Slicer does, the
outputs are written from that file alone, and the double's readers parse them back (LPS/RAS per file).
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import importlib.util
import json
import math
import os
import re
import sys
import textwrap
import types
import urllib.parse
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import slicer_double  # noqa: E402
import vtk  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MARKUPS_SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"
TABLE_COLUMNS = (  # CONTRIBUTING.md, "Lesion table columns"
    "id", "name", "label", "confidence_max", "confidence_mean", "voxel_count", "volume_mm3",
    "centroid_i", "centroid_j", "centroid_k", "centroid_r", "centroid_a", "centroid_s",
    "centroid_l", "centroid_p", "centroid_s_lps", "bbox_i_min", "bbox_j_min", "bbox_k_min",
    "bbox_i_max", "bbox_j_max", "bbox_k_max", "equivalent_diameter_mm", "longest_axial_diameter_mm",
    "surface_area_mm2", "sphericity",
)
SPHERES = ((20, 14, 8, 4.0), (8, 6, 13, 2.6))  # (i, j, k, radius in voxels); the first is the larger lesion


#
# Output writers standing in for the library
#


def write_outputs_fixture(input_path: str, output_dir: str, stem: str) -> None:
    """Hand-written outputs following CONTRIBUTING.md, computed with SimpleITK from the input file only."""
    import nrrd
    import SimpleITK as sitk

    image = sitk.ReadImage(input_path)
    values = sitk.GetArrayViewFromImage(image)
    mask = image > float((values.min() + values.max()) / 2)
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(mask, True), sortByObjectSize=True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    ids = sorted(stats.GetLabels())
    os.makedirs(output_dir, exist_ok=True)
    axes = np.asarray(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    header = {"space": "left-posterior-superior", "space directions": axes.T, "space origin": np.asarray(image.GetOrigin()),
              "kinds": ["domain"] * 3, "encoding": "gzip"}
    for n in ids:
        header.update({f"Segment{n - 1}_ID": f"Segment_{n}", f"Segment{n - 1}_Name": f"Lesion {n}",
                       f"Segment{n - 1}_LabelValue": str(n), f"Segment{n - 1}_Layer": "0"})
    nrrd.write(os.path.join(output_dir, f"{stem}.seg.nrrd"), sitk.GetArrayFromImage(labels).astype(np.uint8), header,
               index_order="C")
    points = [{"id": str(n), "label": f"L{n}", "description": f"lesion {n}", "position": list(stats.GetCentroid(n))}
              for n in ids]
    with open(os.path.join(output_dir, f"{stem}.mrk.json"), "w", encoding="utf-8") as file:
        json.dump({"@schema": MARKUPS_SCHEMA, "markups": [
            {"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "controlPoints": points}]}, file)
    with open(os.path.join(output_dir, f"{stem}.lesions.csv"), "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, TABLE_COLUMNS)
        writer.writeheader()
        for n in ids:
            left, posterior, superior = stats.GetCentroid(n)
            writer.writerow({"id": n, "name": f"Lesion {n}", "label": f"L{n}", "confidence_max": 1.0,
                             "confidence_mean": 1.0, "voxel_count": stats.GetNumberOfPixels(n),
                             "volume_mm3": stats.GetPhysicalSize(n), "centroid_l": left, "centroid_p": posterior,
                             "centroid_s_lps": superior, "centroid_r": -left, "centroid_a": -posterior,
                             "centroid_s": superior,
                             "longest_axial_diameter_mm": 2 * stats.GetEquivalentSphericalRadius(n)})


def write_outputs_library(input_path: str, output_dir: str, stem: str) -> None:
    """The real library's reader, post-processing and writers; the 'model' is the normalised intensity."""
    from LesionDetectLib.io import read_volume
    from LesionDetectLib.lesions import from_probability
    from LesionDetectLib.result import DetectionResult

    volume = read_volume(input_path)
    values = volume.array.astype(np.float32)
    probability = (values - values.min()) / max(float(np.ptp(values)), 1e-6)
    lesions, label_map = from_probability(probability, volume, 0.5)
    DetectionResult(volume, lesions, label_map, probability, 0.5, "intensity").write(output_dir, stem)


def library_writers_available() -> bool:
    try:
        importlib.import_module("LesionDetectLib.writers").write_all  # noqa: B018
        importlib.import_module("LesionDetectLib.surface")
    except (ImportError, AttributeError):
        return False
    return True


class FakeRunner:
    """Stands in for `SubprocessRunner`: nothing happens until `poll`, like a process seen through a QTimer.

    behaviour: "succeed" (progress lines, then ``writer`` makes the outputs), "fail" (the CLI's error protocol),
    "crash" (a traceback on stderr, no JSON), "hang" (runs until cancelled).
    """

    def __init__(self, behaviour="succeed", writer=write_outputs_fixture, warnings=()):
        self.behaviour, self.writer, self.warnings = behaviour, writer, warnings
        self.commands, self.environments = [], []
        self._callbacks = None
        self._cancelled = False

    @property
    def isRunning(self):
        return self._callbacks is not None

    def start(self, command, environment, onStdoutLine, onStderrLine, onFinished):
        assert not self.isRunning
        self.commands.append(list(command))
        self.environments.append(environment)
        self._callbacks = (onStdoutLine, onStderrLine, onFinished)
        self._cancelled = False

    def poll(self):
        if not self.isRunning or (self.behaviour == "hang" and not self._cancelled):
            return
        out, err, _ = self._callbacks
        command = self.commands[-1]
        if self._cancelled:
            exit_code = -15  # SIGTERM
        elif self.behaviour == "succeed":
            for stage, fraction in (("read", 0.0), ("load_model", 0.05), ("inference", 0.5), ("write", 0.95)):
                out(json.dumps({"stage": stage, "fraction": fraction, "message": f"{stage} step"}))
            for warning in self.warnings:
                out(json.dumps({"stage": "warning", "fraction": 0.1, "message": warning}))
            self.writer(command[command.index("detect") + 1], command[command.index("-o") + 1], "volume")
            out(json.dumps({"stage": "done", "fraction": 1.0, "message": "1 written"}))
            exit_code = 0
        elif self.behaviour == "fail":
            message = "model 'ct-tumours' is for CT but the input is MR"
            out(json.dumps({"stage": "read", "fraction": 0.0, "message": "reading"}))
            out(json.dumps({"stage": "error", "fraction": 1.0, "exit_code": 7, "message": message}))
            err(f"lesiondetect: error: {message}")
            exit_code = 7
        else:  # crash
            for line in ("Traceback (most recent call last):", '  File "infer.py", line 12, in probabilities',
                         "RuntimeError: CUDA error: out of memory"):
                err(line)
            exit_code = 1
        self._finish(exit_code)

    def _finish(self, exit_code):
        finished = self._callbacks[2]
        self._callbacks = None
        finished(exit_code)

    def cancel(self):
        self._cancelled = True

    def wait(self):
        while self.isRunning:
            self.poll()


#
# Fixtures
#


FAKED_MODULES = ("qt", "slicer", "slicer.util", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper",
                 "SampleData", "PyTorchUtils", "LesionDetect", "LesionDetectProcess", "LesionDetectResults")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fresh double and a freshly imported module (it binds the fake `slicer` at import); afterwards
    ``sys.modules`` is as it was, so other test files never see a fake ``slicer``."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # also for the detection processes the tests start
    saved = {name: sys.modules.get(name) for name in FAKED_MODULES}
    temporary = tmp_path / "slicer-temp"
    temporary.mkdir()
    state = slicer_double.install(str(temporary))
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.syspath_prepend(str(REPO / "LesionDetect"))
    for name in ("LesionDetect", "LesionDetectProcess", "LesionDetectResults"):
        sys.modules.pop(name, None)
    module = importlib.import_module("LesionDetect")
    yield types.SimpleNamespace(state=state, module=module, slicer=sys.modules["slicer"], temporary=temporary)
    for name, original in saved.items():
        if original is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = original


def make_logic(env, runner):
    logic = env.module.LesionDetectLogic(processRunner=runner, pythonExecutable=sys.executable)
    logic.findModule = lambda name: object()  # every dependency "installed"
    return logic


def rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    x, y, z = axis
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    angle = math.radians(degrees)
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def make_volume(env, name="Patient MR", transformed=True, in_study=True):
    """32×24×20 FLAIR-like volume: oblique, left-handed, anisotropic IJK→RAS with a non-zero origin; two bright spheres;
    optionally under a rotating parent transform and inside a patient/study of the subject hierarchy."""
    slicer = env.slicer
    k, j, i = np.mgrid[0:20, 0:24, 0:32]
    voxels = np.zeros((20, 24, 32), dtype=np.int16)  # FLAIR-like: dark outside a textured "brain"
    voxels[2:18, 3:21, 3:29] = 100 + np.random.default_rng(7).integers(0, 20, (16, 18, 26))
    for ci, cj, ck, radius in SPHERES:
        voxels[(i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2 <= radius**2] = 400
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = rotation((1, 2, 3), 35) @ np.diag([1, 1, -1]) @ np.diag([0.7, 1.1, 2.5])
    ijk_to_ras[:3, 3] = (-40.5, 12.25, 80.0)
    volume = slicer.util.addVolumeFromArray(voxels, ijk_to_ras, name=name)
    to_world = np.eye(4)
    if transformed:
        to_world[:3, :3], to_world[:3, 3] = rotation((0, 0, 1), 30), (5.0, -3.0, 2.0)
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
        transform.SetMatrixTransformToParent(slicer_double._arrayToMatrix(to_world))
        volume.SetAndObserveTransformNodeID(transform.GetID())
    study = None
    if in_study:
        sh = slicer.mrmlScene.GetSubjectHierarchyNode()
        study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient"), "Study")
        sh.SetItemParent(sh.GetItemByDataNode(volume), study)
    expected_world = [(to_world @ ijk_to_ras @ np.array([ci, cj, ck, 1.0]))[:3] for ci, cj, ck, _ in SPHERES]
    return types.SimpleNamespace(node=volume, ijk_to_ras=ijk_to_ras, study=study, expected_world=expected_world)


@pytest.fixture(params=["fixture", "library"])
def writer(request):
    if request.param == "library":
        if not library_writers_available():
            pytest.skip("LesionDetectLib writers are not there yet")
        return write_outputs_library
    return write_outputs_fixture


def temporary_leftovers(env):
    return sorted(os.listdir(env.temporary))


#
# Logic: nodes and geometry
#


def test_result_nodes_are_named_tagged_placed_and_overlay_the_input(env, writer):
    volume = make_volume(env)
    runner = FakeRunner(writer=writer)
    seg, points, table = make_logic(env, runner).process(volume.node, threshold=0.4, device="gpu")

    assert [node.GetName() for node in (seg, points, table)] == [
        "Patient MR lesions", "Patient MR lesion points", "Patient MR lesion table"]
    sh = env.slicer.mrmlScene.GetSubjectHierarchyNode()
    for node in (seg, points, table):
        assert node.GetAttribute("LesionDetect.InputVolumeID") == volume.node.GetID()
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == volume.study
        assert node.GetStorageNode() is None  # no link to the deleted temporary files
    assert seg.GetTransformNodeID() == points.GetTransformNodeID() == volume.node.GetTransformNodeID() is not None
    assert seg.referenceVolume is volume.node
    np.testing.assert_allclose(seg.labelmapIjkToRas, volume.ijk_to_ras, atol=1e-6)  # same grid as the input
    assert [seg.GetSegmentation().GetSegment(seg.GetSegmentation().GetNthSegmentID(n)).GetName() for n in range(2)] == [
        "Lesion 1", "Lesion 2"]

    assert [points.GetNthControlPointLabel(n) for n in range(points.GetNumberOfControlPoints())] == ["L1", "L2"]
    for n, expected in enumerate(volume.expected_world):
        world = [0.0, 0.0, 0.0]
        points.GetNthControlPointPositionWorld(n, world)
        np.testing.assert_allclose(world, expected, atol=1e-3)

    assert table.GetNumberOfRows() == 2
    columns = table.GetTable()
    assert columns.GetColumnByName("id").GetClassName() == "vtkIntArray"
    assert columns.GetColumnByName("volume_mm3").GetClassName() == "vtkDoubleArray"
    assert columns.GetColumnByName("label").GetValue(1) == "L2"
    assert not env.slicer.util.getNodesByClass("vtkMRMLStorageNode")
    assert temporary_leftovers(env) == []

    (export,) = env.state.callsNamed("exportNode")
    assert export[1] == volume.node.GetID() and export[3] == {"useCompression": 0} and export[4] is False
    command = runner.commands[0]
    assert command[:4] == [sys.executable, "-m", "LesionDetectLib", "detect"]
    assert command[command.index("--device") + 1] == "cuda"
    assert command[command.index("--threshold") + 1] == "0.4"
    assert command[command.index("--progress") + 1] == "jsonl"
    assert "--model" not in command and "--min-size" not in command
    environment = runner.environments[0]
    assert environment["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert environment["PYTHONIOENCODING"] == "utf-8"


def test_double_lists_every_slicer_call_the_module_makes():
    """The audit table at the top of slicer_double.py names every MRML/VTK-style method and slicer.util function."""
    table = (REPO / "Testing" / "slicer_double.py").read_text(encoding="utf-8").split('"""')[1]
    not_slicer = {"DictReader", "Popen", "Queue", "Thread", "STARTUPINFO"}  # Python's standard library
    for path in (REPO / "LesionDetect").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        names = set(re.findall(r"\.([A-Z][A-Za-z0-9]+)\(", source)) | set(re.findall(r"slicer\.util\.(\w+)", source))
        missing = sorted(name for name in names - not_slicer if name not in table)
        assert not missing, f"{path.name} calls {missing}, which the double's table does not list"


def test_markups_reader_honours_the_file_coordinate_system(tmp_path):
    """The double's reader must tell LPS from RAS files, or the placement test above could not fail."""
    for system, position in (("LPS", [10.0, -20.0, 30.0]), ("RAS", [-10.0, 20.0, 30.0])):
        path = tmp_path / f"{system}.mrk.json"
        path.write_text(json.dumps({"@schema": MARKUPS_SCHEMA, "markups": [
            {"type": "Fiducial", "coordinateSystem": system, "controlPoints": [{"label": "L1", "position": position}]}]}), encoding="utf-8")
        node = slicer_double.readMarkupsJson(str(path))
        local = [0.0, 0.0, 0.0]
        node.GetNthControlPointPosition(0, local)
        assert local == [-10.0, 20.0, 30.0]


def test_fixture_markups_file_follows_the_markups_schema(env, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = REPO.parent / "shared" / "schemas" / "markups-schema-v1.0.3.json"
    if not schema_path.is_file():
        pytest.skip(f"{schema_path} is not available")
    volume = make_volume(env, transformed=False, in_study=False)
    env.slicer.util.exportNode(volume.node, str(tmp_path / "v.nrrd"), {"useCompression": 0})
    write_outputs_fixture(str(tmp_path / "v.nrrd"), str(tmp_path / "out"), "v")
    document = json.loads((tmp_path / "out" / "v.mrk.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, json.loads(schema_path.read_text(encoding="utf-8")))


def test_rerun_replaces_only_that_volumes_results(env):
    first, other = make_volume(env, "First"), make_volume(env, "Other", transformed=False)
    logic = make_logic(env, FakeRunner())
    old = logic.process(first.node)
    others = logic.process(other.node)
    new = logic.process(first.node)

    for node in old:
        assert node.GetScene() is None
    for className in ("vtkMRMLSegmentationNode", "vtkMRMLMarkupsFiducialNode", "vtkMRMLTableNode"):
        tagged = [n.GetAttribute("LesionDetect.InputVolumeID") for n in env.slicer.util.getNodesByClass(className)]
        assert sorted(tagged) == sorted([first.node.GetID(), other.node.GetID()])
    assert all(node.GetScene() is not None for node in (*new, *others))
    assert env.module.LesionDetectResults.findResults(first.node) == new


def test_no_lesion_gives_empty_results(env):
    volume = make_volume(env, transformed=False)
    logic = make_logic(env, FakeRunner(writer=lambda i, o, s: write_empty_outputs(o, s)))
    seg, points, table = logic.process(volume.node)
    assert (seg.GetSegmentation().GetNumberOfSegments(), points.GetNumberOfControlPoints(), table.GetNumberOfRows()) == (0, 0, 0)
    assert seg.GetName() == "Patient MR lesions"


def write_empty_outputs(output_dir, stem):
    os.makedirs(output_dir)
    Path(output_dir, f"{stem}.seg.nrrd").write_bytes(b"not read when there is no lesion")
    Path(output_dir, f"{stem}.mrk.json").write_text(json.dumps({"@schema": MARKUPS_SCHEMA, "markups": [
        {"type": "Fiducial", "controlPoints": []}]}), encoding="utf-8")
    Path(output_dir, f"{stem}.lesions.csv").write_text(",".join(TABLE_COLUMNS) + "\n", encoding="utf-8")


#
# Logic: cancel and errors
#


def test_cancel_leaves_scene_unchanged_and_removes_temporary_files(env):
    volume = make_volume(env)
    logic = make_logic(env, FakeRunner())
    previous = logic.process(volume.node)  # earlier results must survive a cancelled run
    before = env.slicer.mrmlScene.snapshot()

    runner = FakeRunner("hang")
    logic.processRunner = runner
    outcomes, progress = [], []
    assert logic.process(volume.node, waitForCompletion=False, progressCallback=progress.append,
                         completionCallback=outcomes.append) is None
    assert logic.isRunning and temporary_leftovers(env)
    runner.poll()
    logic.cancel()
    runner.poll()

    assert [outcome.cancelled for outcome in outcomes] == [True]
    assert not logic.isRunning
    assert env.slicer.mrmlScene.snapshot() == before
    assert env.module.LesionDetectResults.findResults(volume.node) == previous
    assert temporary_leftovers(env) == []
    assert progress and progress[0].stage == "read"


def test_failed_run_reports_the_library_message_and_changes_nothing(env):
    volume = make_volume(env)
    before = env.slicer.mrmlScene.snapshot()
    logic = make_logic(env, FakeRunner("fail"))
    with pytest.raises(env.module.DetectionFailedError, match="is for CT but the input is MR"):
        logic.process(volume.node, model="ct-tumours")
    command = logic.processRunner.commands[0]
    assert command[command.index("--model") + 1] == "ct-tumours"
    outcomes = []
    logic.process(volume.node, waitForCompletion=False, completionCallback=outcomes.append)
    logic.processRunner.poll()
    assert outcomes[0].error == "model 'ct-tumours' is for CT but the input is MR"
    assert env.slicer.mrmlScene.snapshot() == before
    assert temporary_leftovers(env) == []


def test_detection_warnings_reach_the_outcome_not_the_progress_bar(env):
    warning = "the input does not look skull-stripped (3.1 L of tissue; a brain alone is under 2 L)"
    logic = make_logic(env, FakeRunner(warnings=[warning]))
    outcomes, progress = [], []
    logic.process(make_volume(env).node, waitForCompletion=False, progressCallback=progress.append,
                  completionCallback=outcomes.append)
    logic.processRunner.poll()
    assert outcomes[0].warnings == [warning] and outcomes[0].nodes is not None
    assert "warning" not in [event.stage for event in progress]


def test_crash_without_json_reports_stderr(env):
    logic = make_logic(env, FakeRunner("crash"))
    with pytest.raises(env.module.DetectionFailedError, match="CUDA error: out of memory"):
        logic.process(make_volume(env).node)


@pytest.mark.parametrize("case", ["none", "flat", "vector"])
def test_unusable_inputs_are_refused_before_anything_runs(env, case):
    runner = FakeRunner()
    logic = make_logic(env, runner)
    util = env.slicer.util
    volume = {
        "none": None,
        "flat": util.addVolumeFromArray(np.zeros((1, 8, 8), np.int16), name="flat"),
        "vector": util.addVolumeFromArray(np.zeros((4, 8, 8), np.int16), name="rgb"),
    }[case]
    if case == "vector":
        volume.imageData = vtk.vtkImageData()
        volume.imageData.SetDimensions(8, 8, 4)
        volume.imageData.AllocateScalars(vtk.VTK_SHORT, 2)
    message = {"none": "Select an input volume", "flat": "2-D image", "vector": "grayscale"}[case]
    with pytest.raises(env.module.DetectionError, match=message):
        logic.process(volume)
    assert runner.commands == [] and temporary_leftovers(env) == []


def test_missing_dependencies_are_reported_and_installed_after_confirmation(env):
    installed = {"nrrd"}
    logic = make_logic(env, FakeRunner())
    logic.findModule = lambda name: object() if name in installed else None
    volume = make_volume(env)

    with pytest.raises(env.module.MissingDependenciesError, match="torch, monai"):
        logic.process(volume.node)
    env.state.confirmAnswer = False
    assert logic.installDependencies() is False
    assert not env.state.callsNamed("installTorch") and not env.state.callsNamed("pip_install")

    env.state.confirmAnswer = True
    with pytest.raises(env.module.MissingDependenciesError, match="PyTorch extension"):
        logic.installDependencies()

    slicer_double.installPyTorchUtils(env.state, lambda: installed.add("torch") or types.SimpleNamespace())
    env.state.pipInstallHook = lambda requirements: installed.add("monai")
    assert logic.installDependencies() is True
    assert env.state.callsNamed("installTorch") == [("installTorch", False)]
    assert env.state.callsNamed("pip_install") == [("pip_install", "monai>=1.4")]
    assert "torch" in env.state.callsNamed("confirmOkCancelDisplay")[-1][1]
    assert logic.process(volume.node) is not None


def test_declining_the_torch_installer_stops(env):
    logic = make_logic(env, FakeRunner())
    logic.findModule = lambda name: None if name == "torch" else object()
    slicer_double.installPyTorchUtils(env.state, lambda: None)
    assert logic.installDependencies(askConfirmation=False) is False
    assert not env.state.callsNamed("pip_install")


def test_progress_events_reach_the_callback_in_order(env):
    events = []
    make_logic(env, FakeRunner()).process(make_volume(env).node, progressCallback=events.append,
                                          minimumLesionSizeMm3=20.0, model="ms-flair")
    assert [event.stage for event in events] == ["read", "read", "load_model", "inference", "write", "done", "load"]
    assert events[3].fraction == 0.5


def test_jump_to_lesion_uses_the_markups_logic(env):
    logic = make_logic(env, FakeRunner())
    _, points, _ = logic.process(make_volume(env).node)
    logic.jumpToLesion(points, "L2")
    assert env.state.callsNamed("JumpSlicesToNthPointInMarkup") == [
        ("JumpSlicesToNthPointInMarkup", points.GetID(), 1, True)]


#
# Module: sample data
#


def test_sample_data_is_registered_with_the_published_checksum_only(env, tmp_path, monkeypatch):
    library = tmp_path / "LesionDetectLib"
    (library / "sample_data").mkdir(parents=True)
    sample = library / "sample_data" / "ms_flair.nrrd"
    sample.write_bytes(b"NRRD0004")
    monkeypatch.setattr(env.module, "libraryFolder", lambda: str(library))

    env.module.registerSampleData()
    (call,) = env.state.callsNamed("registerCustomSampleDataSource")  # only the samples that are present
    source = call[1]
    assert source["category"] == "LesionDetect" and source["sampleName"] == "LesionDetect MS FLAIR"
    assert source["uris"] == sample.as_uri() and source["checksums"] is None

    digest = "ab" * 32
    (library / "sample_data" / "SHA256SUMS").write_text(f"{digest}  ms_flair.nrrd\n{'cd' * 32}  other.nrrd\n", encoding="utf-8")
    env.module.registerSampleData()
    assert env.state.callsNamed("registerCustomSampleDataSource")[-1][1]["checksums"] == f"SHA256:{digest}"


def test_both_shipped_samples_are_registered_with_their_checksums(env):
    env.module.registerSampleData()
    sources = {call[1]["sampleName"]: call[1] for call in env.state.callsNamed("registerCustomSampleDataSource")}
    assert set(sources) == {"LesionDetect MS FLAIR", "LesionDetect sarcoma CT"}
    sums = dict(reversed(line.split()) for line in (REPO / "LesionDetectLib" / "sample_data" / "SHA256SUMS")
                .read_text(encoding="utf-8").splitlines())
    for source in sources.values():
        path = Path(urllib.parse.urlparse(source["uris"]).path)
        assert path.is_file() and source["checksums"] == f"SHA256:{sums[path.name]}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.name]


def test_module_metadata_and_startup_hook(env):
    parent = types.SimpleNamespace()
    env.module.LesionDetect(parent)
    assert parent.title == "LesionDetect" and parent.categories == ["Segmentation"]
    assert "Lesjak" in parent.acknowledgementText
    assert ("app.connect", "startupCompleted()", env.module.registerSampleData) in env.state.calls


#
# Widget
#


@pytest.fixture
def widget(env):
    parent = slicer_double.Widget("qMRMLWidget")
    parent.isEntered = True
    panel = env.module.LesionDetectWidget(parent)
    panel.setup()
    panel.logic.processRunner = FakeRunner()
    panel.logic.pythonExecutable = sys.executable
    panel.logic.findModule = lambda name: object()
    return panel


def test_widget_without_volume_shows_a_clear_error(env, widget):
    assert widget.ui.modelComboBox.itemData(0) == ""
    assert [widget.ui.deviceComboBox.itemText(n) for n in range(3)] == [
        "Automatic (GPU if available)", "CPU", "GPU (CUDA)"]
    widget.onApplyButton()
    assert env.state.callsNamed("errorDisplay") == [("errorDisplay", "Select an input volume first.", "LesionDetect")]


def test_widget_runs_fills_the_table_jumps_and_cancels(env, widget):
    volume = make_volume(env)
    widget.ui.inputVolumeSelector.setCurrentNode(volume.node)
    widget.ui.thresholdSliderWidget.value = 0.3
    widget.ui.deviceComboBox.currentIndex = 1
    assert widget.ui.applyButton.enabled

    widget.ui.applyButton.click()
    assert widget.ui.applyButton.text == "Cancel" and widget.ui.progressBar.visible
    command = widget.logic.processRunner.commands[-1]
    assert command[command.index("--threshold") + 1] == "0.3" and command[command.index("--device") + 1] == "cpu"
    widget.logic.processRunner.poll()
    assert widget.ui.applyButton.text == "Detect lesions"
    assert widget.ui.resultsTable.rowCount() == 2 and widget.ui.resultsTable.item(1, 0).text() == "L2"
    assert "2 lesion(s)" in widget.ui.statusLabel.text

    widget.ui.resultsTable.emit("cellClicked(int,int)", 1, 2)
    assert env.state.callsNamed("JumpSlicesToNthPointInMarkup")[-1][2] == 1
    widget.ui.show3DCheckBox.checked = True
    assert widget._results.segmentation.hasClosedSurface and widget._parameterNode.show3D

    widget.logic.processRunner.behaviour = "hang"
    widget.ui.applyButton.click()
    widget.ui.applyButton.click()  # now "Cancel"
    widget.logic.processRunner.poll()
    assert widget.ui.statusLabel.text.startswith("Cancelled")
    assert widget.ui.resultsTable.rowCount() == 2 and not env.state.callsNamed("errorDisplay")


def test_widget_shows_the_failure_message(env, widget):
    widget.ui.inputVolumeSelector.setCurrentNode(make_volume(env).node)
    widget.logic.processRunner.behaviour = "fail"
    widget.ui.applyButton.click()
    widget.logic.processRunner.poll()
    (call,) = env.state.callsNamed("errorDisplay")
    assert "is for CT but the input is MR" in call[1]
    assert widget.ui.applyButton.text == "Detect lesions"


def test_widget_shows_detection_warnings_with_the_results(env, widget):
    widget.ui.inputVolumeSelector.setCurrentNode(make_volume(env).node)
    widget.logic.processRunner.warnings = ["the input does not look skull-stripped"]
    widget.ui.applyButton.click()
    widget.logic.processRunner.poll()
    assert widget.ui.resultsTable.rowCount() == 2 and "Check the warning" in widget.ui.statusLabel.text
    assert env.state.callsNamed("warningDisplay") == [
        ("warningDisplay", "the input does not look skull-stripped", "LesionDetect")]


def test_widget_lists_models_and_applies_their_threshold(env, widget, monkeypatch):
    model = types.SimpleNamespace(name="ms-flair", version="1.0", modality="MR", description="MS lesions on FLAIR",
                                  threshold=0.35)
    monkeypatch.setattr(widget.logic, "availableModels", lambda: [model])
    widget.populateModels()
    combo = widget.ui.modelComboBox
    assert [combo.itemData(n) for n in range(combo.count)] == ["", "ms-flair"]
    combo.currentIndex = 1
    assert widget._parameterNode.model == "ms-flair" and widget._parameterNode.threshold == 0.35
    assert widget.ui.thresholdSliderWidget.value == 0.35
    assert "MS lesions on FLAIR" in widget.ui.modelDescriptionLabel.text


#
# The real process runner
#


def run_to_end(runner, command, timeout=20):
    lines, finished = {"out": [], "err": []}, []
    runner.start(command, dict(os.environ), lines["out"].append, lines["err"].append, finished.append)
    runner.wait(timeoutS=timeout)
    return lines, finished


def test_subprocess_runner_delivers_lines_then_the_exit_code(env):
    runner = env.module.SubprocessRunner()
    script = "import sys\nprint('{\"stage\": \"read\", \"fraction\": 0.1}')\nprint('é³ warning', file=sys.stderr)\nsys.exit(3)"
    lines, finished = run_to_end(runner, [sys.executable, "-c", script])
    assert lines == {"out": ['{"stage": "read", "fraction": 0.1}'], "err": ["é³ warning"]} and finished == [3]
    assert not runner.isRunning


@pytest.mark.skipif(os.name == "nt", reason="process groups are POSIX; Windows uses taskkill /T")
def test_subprocess_runner_cancel_stops_the_whole_process_tree(env):
    script = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    runner = env.module.SubprocessRunner(terminateGraceS=0.5)
    grandchild, finished = [], []
    runner.start([sys.executable, "-c", script], dict(os.environ), grandchild.append, lambda line: None, finished.append)
    while not grandchild:
        runner.poll()
    runner.cancel()
    runner.wait(timeoutS=10)
    assert len(finished) == 1 and finished[0] != 0
    assert not process_alive(int(grandchild[0]))


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()  # a zombie has exited; only its exit status remains
    except FileNotFoundError:
        return False


def test_parse_progress_line(env):
    from LesionDetectProcess import errorMessage, parseProgressLine

    event = parseProgressLine('{"stage": "error", "fraction": 2, "message": "bad", "exit_code": 4}')
    assert (event.stage, event.fraction, event.message, event.exitCode) == ("error", 1.0, "bad", 4)
    assert parseProgressLine("Traceback (most recent call last):") is None
    assert parseProgressLine("[1, 2]") is None
    assert errorMessage(None, [], 9) == "the detection process stopped with exit code 9"


def test_real_cli_error_travels_through_the_real_runner(env):
    """The library's own `detect` command (no such model) → its JSON error line → the message shown to users."""
    try:
        importlib.import_module("LesionDetectLib.cli.detect")
    except ImportError as error:
        pytest.skip(f"the library's CLI is not importable yet: {error}")
    logic = env.module.LesionDetectLogic(pythonExecutable=sys.executable)
    logic.findModule = lambda name: object()
    volume = make_volume(env, transformed=False)
    before = env.slicer.mrmlScene.snapshot()
    with pytest.raises(env.module.DetectionFailedError, match="no-such-model"):
        logic.process(volume.node, model="no-such-model", device="cpu")
    assert env.slicer.mrmlScene.snapshot() == before and temporary_leftovers(env) == []


def test_real_detection_end_to_end(env):
    """Everything real except Slicer: the real runner starts the real `detect` command with the packaged
    baseline model (torch on CPU), and the lesions come back at the right world positions."""
    try:
        models = [model.name for model in importlib.import_module("LesionDetectLib.bundles").list_models()]
    except ImportError as error:
        pytest.skip(f"LesionDetectLib is not importable: {error}")
    if "flair-hyperintensity-baseline" not in models or importlib.util.find_spec("monai") is None:
        pytest.skip("needs the packaged baseline model, torch and MONAI")
    logic = env.module.LesionDetectLogic(pythonExecutable=sys.executable)
    volume = make_volume(env)
    events = []
    seg, points, table = logic.process(volume.node, model="flair-hyperintensity-baseline", device="cpu",
                                       progressCallback=events.append)
    assert {"load_model", "inference", "write"} <= {event.stage for event in events}
    assert seg.GetSegmentation().GetNumberOfSegments() == points.GetNumberOfControlPoints() == table.GetNumberOfRows() == 2
    for n, expected in enumerate(volume.expected_world):
        world = [0.0, 0.0, 0.0]
        points.GetNthControlPointPositionWorld(n, world)
        np.testing.assert_allclose(world, expected, atol=0.5)  # resampled to the model grid and back
        assert "confidence" in points.GetNthControlPointDescription(n)
    assert temporary_leftovers(env) == []


def test_slicer_self_test_runs_against_the_double(env, monkeypatch):
    """The ScriptedLoadableModuleTest that runs inside Slicer, here with the double and a real subprocess."""
    if not library_writers_available():
        pytest.skip("LesionDetectLib writers are not there yet")
    monkeypatch.setattr(env.module.shutil, "which", lambda name: sys.executable if name == "PythonSlicer" else None)
    test = env.module.LesionDetectTest()
    test.setUp()
    test.test_LesionDetect_GeometryAndNodes()
    test.setUp()
    test.test_LesionDetect_InputErrors()
