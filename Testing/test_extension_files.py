"""The files that make LesionDetect a Slicer extension: CMake, catalog entry, icons, UI, licence."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CATALOG_SCHEMA = REPO.parent / "shared" / "schemas" / "slicer-extension-catalog-entry-schema-v1.0.1.json"
HOMEPAGE = "https://github.com/lesiondetect/SlicerLesionDetect"


def cmake_set(text: str, variable: str) -> str:
    match = re.search(rf'^set\({variable}\s+"([^"]*)"\)', text, re.MULTILINE)
    assert match, f"{variable} is not set"
    return match.group(1)


def test_top_level_cmake_declares_the_extension_and_installs_the_library():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"^project\(LesionDetect\)", text, re.MULTILINE)
    assert cmake_set(text, "EXTENSION_HOMEPAGE") == HOMEPAGE
    assert cmake_set(text, "EXTENSION_CATEGORY") == "Segmentation"
    assert cmake_set(text, "EXTENSION_CONTRIBUTORS") == "LesionDetect contributors"
    assert cmake_set(text, "EXTENSION_DESCRIPTION")
    assert cmake_set(text, "EXTENSION_DEPENDS") == "PyTorch"
    for variable in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert cmake_set(text, variable).startswith("https://raw.githubusercontent.com/lesiondetect/SlicerLesionDetect/")
    assert cmake_set(text, "EXTENSION_ICONURL").endswith("/LesionDetect.png")
    order = ["find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(LesionDetect)",
             "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"]
    positions = [text.index(statement) for statement in order]
    assert positions == sorted(positions)
    # The library goes next to the module: all .py files, models/ and sample_data/, recursively.
    assert "GLOB_RECURSE" in text and "LesionDetectLib/*.py" in text
    assert "LesionDetectLib/models/*" in text and "LesionDetectLib/sample_data/*" in text
    install = re.search(r"install\(DIRECTORY\s+\$\{CMAKE_CURRENT_SOURCE_DIR\}/LesionDetectLib\s+"
                        r"DESTINATION\s+\$\{Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR\}", text)
    assert install, "LesionDetectLib must be installed into ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}"


def test_module_cmake_lists_every_script_and_resource():
    text = (REPO / "LesionDetect" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    assert re.search(r"if\(BUILD_TESTING\)\s+.*slicer_add_python_unittest\(SCRIPT \$\{MODULE_NAME\}\.py\)", text, re.DOTALL)
    module_name = re.search(r"set\(MODULE_NAME (\w+)\)", text).group(1)
    listed = {entry.replace("${MODULE_NAME}", module_name) for entry in re.findall(r"^\s+(\S+\.(?:py|png|ui))$", text, re.MULTILINE)}
    scripts = {path.name for path in (REPO / "LesionDetect").glob("*.py")}
    assert scripts and scripts <= listed, f"scripts missing from SCRIPTS: {scripts - listed}"
    for resource in ("Resources/Icons/LesionDetect.png", "Resources/UI/LesionDetect.ui"):
        assert resource in listed and (REPO / "LesionDetect" / resource).is_file()


def test_catalog_entry_validates_against_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    if not CATALOG_SCHEMA.is_file():
        pytest.skip(f"{CATALOG_SCHEMA} is not available")
    entry = json.loads((REPO / "LesionDetect.json").read_text(encoding="utf-8"))
    jsonschema.validate(entry, json.loads(CATALOG_SCHEMA.read_text(encoding="utf-8")))
    assert entry["category"] == "Segmentation"
    assert entry["scm_url"] == HOMEPAGE
    assert entry["build_dependencies"] == ["PyTorch"]


@pytest.mark.parametrize("path", ["LesionDetect.png", "LesionDetect/Resources/Icons/LesionDetect.png"])
def test_icons_are_128_pixel_pngs(path):
    from PIL import Image

    with Image.open(REPO / path) as image:
        assert image.format == "PNG" and image.size == (128, 128)


def test_licence_is_apache_2():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10000


def test_ui_file_holds_the_widgets_the_module_uses():
    root = ElementTree.parse(REPO / "LesionDetect" / "Resources" / "UI" / "LesionDetect.ui").getroot()
    widgets = {widget.get("name"): widget.get("class") for widget in root.iter("widget")}
    expected = {
        "inputVolumeSelector": "qMRMLNodeComboBox", "modelComboBox": "QComboBox", "modelDescriptionLabel": "QLabel",
        "thresholdSliderWidget": "ctkSliderWidget", "minimumSizeSpinBox": "QDoubleSpinBox",
        "deviceComboBox": "QComboBox", "applyButton": "QPushButton", "progressBar": "QProgressBar",
        "statusLabel": "QLabel", "show3DCheckBox": "QCheckBox", "resultsTable": "QTableWidget",
        "priorVolumeSelector": "qMRMLNodeComboBox", "compareButton": "QPushButton", "changeSummaryLabel": "QLabel",
        "channelsWidget": "QWidget", "importModelWidget": "QWidget", "importModelFileButton": "QPushButton",
        "importModelFolderButton": "QPushButton",
    }
    assert {name: widgets.get(name) for name in expected} == expected
    source = "".join((REPO / "LesionDetect" / path).read_text(encoding="utf-8")
                     for path in ("LesionDetect.py", "LesionDetectModuleLib/reviewPanel.py",
                                  "LesionDetectModuleLib/comparePanel.py", "LesionDetectModuleLib/channelPanel.py",
                                  "LesionDetectModuleLib/importPanel.py"))
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used <= set(widgets), f"widgets used but not in the .ui: {used - set(widgets)}"
    channels = next(widget for widget in root.iter("widget") if widget.get("name") == "channelsWidget")
    assert channels.find("layout").get("class") == "QFormLayout"  # the selectors are its rows (addRow)
    bound = {prop[0].text for widget in root.iter("widget") for prop in widget.findall("property")
             if prop.get("name") == "SlicerParameterName"}
    assert bound == {"inputVolume", "threshold", "minimumLesionSizeMm3", "device", "showIn3D", "priorVolume"}
    parameters = (REPO / "LesionDetect" / "LesionDetectModuleLib" / "parameters.py").read_text(encoding="utf-8")
    declared = parameters[parameters.index("class LesionDetectParameterNode:"):]
    assert all(re.search(rf"^    {name}: ", declared, re.MULTILINE) for name in bound)
    slider = next(widget for widget in root.iter("widget") if widget.get("name") == "thresholdSliderWidget")
    limits = {prop.get("name"): float(prop[0].text) for prop in slider.findall("property") if prop.get("name") in ("minimum", "maximum")}
    assert limits == {"minimum": 0.01, "maximum": 0.99}


def test_module_never_imports_torch_or_monai_at_file_scope():
    for path in (REPO / "LesionDetect").rglob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(torch|monai)\b", path.read_text(encoding="utf-8"), re.MULTILINE), path
