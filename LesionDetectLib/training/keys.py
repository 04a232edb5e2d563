"""The keys of a training item (the dictionaries MONAI's transforms pass along), shared by every training step."""

IMAGE = "image"  # [C,x,y,z] float32 on the model grid (the datalist item: the image path)
LABEL = "label"  # [1,x,y,z] uint8 0/1 (the datalist item: the label path)
BODY = "body"  # [1,x,y,z] uint8 body/brain mask: where patches are centred and lesions are pasted
CENTRES = "centre_indices"  # the patch-centre voxels of each class, for RandCropByLabelClassesd
CHANNELS = "channels"  # the datalist item's (name, path) of every input channel
