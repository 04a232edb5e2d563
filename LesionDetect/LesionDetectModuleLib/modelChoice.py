"""The panel's model list: the automatic choice first, then every installed model, and the chosen model's text."""

from __future__ import annotations

import logging
from collections.abc import Callable

AUTOMATIC = ""
"""The model name that lets the library pick the model made for the volume's modality."""


class ModelChoice:
    """Fills ``comboBox`` (item data: the model name) and describes the chosen model in ``descriptionLabel``."""

    def __init__(self, comboBox, descriptionLabel, listModels: Callable[[], list]) -> None:
        self.comboBox, self.descriptionLabel, self.listModels = comboBox, descriptionLabel, listModels
        self.models: dict = {}

    def populate(self) -> None:
        combo = self.comboBox
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Automatic (model for the volume's modality)", AUTOMATIC)
        try:
            self.models = {model.name: model for model in self.listModels()}
        except Exception as error:  # a broken installation must not break the module panel
            logging.error(f"LesionDetect: cannot list models: {error}")
            self.models = {}
        for model in self.models.values():
            combo.addItem(f"{model.name} ({model.modality}, v{model.version})", model.name)
        combo.blockSignals(False)
        self.describe(AUTOMATIC)

    def select(self, name: str) -> None:
        """Show ``name`` as chosen without emitting a change (so its default threshold is not applied again)."""
        combo = self.comboBox
        index = combo.findData(name)
        if index >= 0:
            combo.blockSignals(True)
            combo.currentIndex = index
            combo.blockSignals(False)
        self.describe(name)

    def current(self):
        """The chosen model's record; None for the automatic choice."""
        return self.models.get(self.nameAt(self.comboBox.currentIndex))

    def nameAt(self, index: int) -> str:
        return self.comboBox.itemData(index) or AUTOMATIC

    def defaultThreshold(self, name: str) -> float | None:
        """The model's own default threshold (from its `bundles.ModelEntry`), None for the automatic choice."""
        return getattr(self.models.get(name), "threshold", None)

    def describe(self, name: str) -> None:
        model = self.models.get(name)
        if model is None:
            text = "The library picks the installed model made for the volume's modality (CT or MR)."
            if not self.models:
                text = "No model is installed yet. " + text
        else:
            text = f"{model.description}\nModality: {model.modality}, version {model.version}."
            channels = getattr(model, "inputChannels", ())
            if len(channels) > 1:
                text += f" Sequences: {', '.join(channels)} (the input volume is the {channels[0]})."
        self.descriptionLabel.text = text
