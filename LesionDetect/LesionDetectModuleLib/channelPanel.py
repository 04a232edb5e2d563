"""The panel's channel selectors: one volume selector per sequence the chosen model needs beyond the input volume,
labelled with the sequence's name and filled by name where the scene has such a volume; hidden for one-channel
models."""

from __future__ import annotations

import slicer

from .modelList import extraChannels, volumeNamedFor


class ChannelPanel:
    """Keeps ``widget.ui.channelsWidget``'s rows in step with ``widget.models``' chosen model."""

    def __init__(self, widget) -> None:
        self.widget, self.ui = widget, widget.ui
        self.selectors: dict[str, object] = {}
        self.ui.modelComboBox.connect("currentIndexChanged(int)", lambda index: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        """One selector per channel of the chosen model beyond the input; kept (with its choice) where the channel
        stays, filled by name where it is new or empty."""
        channels = extraChannels(self.widget.models.current())
        if tuple(self.selectors) != channels:
            layout = self.ui.channelsWidget.layout()
            while layout.rowCount() > 0:
                layout.removeRow(0)
            self.selectors = {name: self._selector(name) for name in channels}
            for name, selector in self.selectors.items():
                layout.addRow(f"{name} volume:", selector)
        self.ui.channelsWidget.setVisible(bool(channels))
        self.fillByName()

    def fillByName(self) -> None:
        """Give each empty selector the scene volume named like its channel (not the input, not one chosen)."""
        volumes = list(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"))
        for name, selector in self.selectors.items():
            if selector.currentNode() is None:
                taken = (self.ui.inputVolumeSelector.currentNode(), *self.volumes().values())
                selector.setCurrentNode(volumeNamedFor(name, volumes, exclude=taken))

    def volumes(self) -> dict:
        """``{channel: volume node or None}`` for the detection's ``channelVolumes``."""
        return {name: selector.currentNode() for name, selector in self.selectors.items()}

    @staticmethod
    def _selector(name: str):
        selector = slicer.qMRMLNodeComboBox()
        selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
        selector.showChildNodeTypes = False
        selector.noneEnabled = True
        selector.addEnabled = False
        selector.removeEnabled = False
        selector.toolTip = f"The {name} sequence of the same scan, which the chosen model also needs."
        selector.setMRMLScene(slicer.mrmlScene)
        return selector
