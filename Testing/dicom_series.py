"""An oblique CT series written with pydicom, carrying identifying patient and study tags."""

from __future__ import annotations

import math

import numpy as np

IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "PATIENT-ID-42", "PatientBirthDate": "19700101",
               "AccessionNumber": "ACC-123456", "ReferringPhysicianName": "Smith^John"}
NOT_REQUIRED = {"OtherPatientIDs": "OTHER-ID-77", "PatientAddress": "1 Main Street",
                "InstitutionName": "St Elsewhere Hospital"}


def rotation(axis, degrees):
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    angle = math.radians(degrees)
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def write_oblique_series(folder, array, direction, spacing, origin):
    """``array`` [k, j, i] as a CT series on the grid (LPS ``direction`` columns, ``spacing`` i, j, k, ``origin``),
    one file per slice, the file names in reverse slice order, with identifying patient and study tags."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k, image in enumerate(array):
        dataset = Dataset()
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.file_meta.MediaStorageSOPClassUID = CTImageStorage
        dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.update({keyword: value for keyword, value in {**IDENTIFIERS, **NOT_REQUIRED}.items()})
        dataset.PatientSex, dataset.StudyDate, dataset.StudyTime, dataset.StudyID = "F", "20240102", "101500", "7"
        dataset.Modality, dataset.Manufacturer = "CT", "Test"
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.FrameOfReferenceUID = study, series, frame
        dataset.SeriesNumber, dataset.InstanceNumber, dataset.PositionReferenceIndicator = 3, k + 1, ""
        dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        dataset.ImageOrientationPatient = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
        dataset.ImagePositionPatient = [float(v) for v in np.asarray(origin) + direction[:, 2] * spacing[2] * k]
        dataset.PixelSpacing, dataset.SliceThickness = [spacing[1], spacing[0]], spacing[2]
        dataset.Rows, dataset.Columns = image.shape
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 1
        dataset.RescaleIntercept, dataset.RescaleSlope = 0, 1
        dataset.PixelData = np.ascontiguousarray(image, dtype="<i2").tobytes()
        dataset.save_as(folder / f"image{len(array) - k:03d}.dcm", enforce_file_format=True)
    return folder
