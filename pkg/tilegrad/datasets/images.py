"""What the image datasets share: (image, label) pairs held as two tensors, with optional
per-sample transforms, read a whole batch at a time when there are none."""
from ..utils.data import TensorDataset


class ImageDataset(TensorDataset):
    """``tensors`` are (images, labels); ``transform``/``target_transform`` apply per sample."""

    def __init__(self, images, labels, transform=None, target_transform=None):
        super().__init__(images, labels)
        self.transform = transform
        self.target_transform = target_transform

    @property
    def data(self):
        return self.tensors[0]

    @property
    def targets(self):
        return self.tensors[1]

    def __getitem__(self, index):
        image, label = self.tensors[0][index], self.tensors[1][index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def _fetch_batch(self, indices):
        if self.transform is not None or self.target_transform is not None:
            return None  # per-sample transforms: the DataLoader collates sample by sample
        return super()._fetch_batch(indices)
