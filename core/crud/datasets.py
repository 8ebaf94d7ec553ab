"""Datasets: create from a validated ImageSet (file, then row; neither survives a failure), read, delete."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from core.db.orm import Dataset, DatasetSplit, Job
from core.jobstate import TERMINAL
from core.storage import ArtifactStore
from models.datasets import ImageSet, save_npz

DATA_FILE = "data.npz"


class DatasetInUseError(Exception):
    """The dataset is used by a job that has not finished."""


def create_dataset(
    session: Session,
    store: ArtifactStore,
    *,
    owner: str,
    name: str,
    imageset: ImageSet,
    data_format: str,
    sha256: str,
    size_bytes: int,
) -> Dataset:
    """Store ``imageset`` in the normalised MedMNIST layout the workers read, and its row with per-split counts.

    ``data_format`` is the layout it arrived in (``npz`` | ``imagefolder`` | ``csv``), kept for the record, with
    the decode choices and patients per split; no file name, tag or patient id is kept (the stored npz has
    pixels, labels and class names only).
    """
    dataset_id = str(uuid.uuid4())
    directory = store.dataset_dir(dataset_id)
    target = directory / DATA_FILE
    try:
        with store.atomic(target) as tmp:
            save_npz(imageset, tmp)
        dataset = Dataset(
            id=dataset_id,
            owner=owner,
            name=name,
            format=data_format,
            sha256=sha256,
            size_bytes=size_bytes,
            channels=imageset.channels,
            height=imageset.image_size[0],
            width=imageset.image_size[1],
            num_classes=imageset.num_classes,
            num_images=imageset.num_images,
            class_names=list(imageset.class_names),
            decode=imageset.decode,
            patients=imageset.patients(),
            storage_path=store.relative(target),
        )
        for split, counts in imageset.counts().items():
            for k, count in enumerate(counts):
                dataset.splits.append(
                    DatasetSplit(split=split, class_index=k, class_name=imageset.class_names[k], count=count)
                )
        session.add(dataset)
        session.commit()
    except BaseException:
        session.rollback()
        store.remove_tree(directory)
        raise
    return dataset


def get_dataset(session: Session, *, owner: str, dataset_id: str) -> Dataset | None:
    query = (
        select(Dataset).where(Dataset.id == dataset_id, Dataset.owner == owner).options(selectinload(Dataset.splits))
    )
    return session.scalars(query).one_or_none()


def list_datasets(session: Session, *, owner: str, limit: int, offset: int) -> tuple[list[Dataset], int]:
    where = Dataset.owner == owner
    count = session.scalar(select(func.count()).select_from(Dataset).where(where)) or 0
    query = (
        select(Dataset)
        .where(where)
        .order_by(Dataset.created_at.desc(), Dataset.id)
        .limit(limit)
        .offset(offset)
        .options(selectinload(Dataset.splits))
    )
    return list(session.scalars(query)), count


def delete_dataset(session: Session, store: ArtifactStore, *, dataset: Dataset) -> None:
    """Delete the row and its files; refused while a queued or running job uses it."""
    session.scalars(select(Dataset.id).where(Dataset.id == dataset.id).with_for_update()).one_or_none()
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.dataset_id == dataset.id, Job.status.not_in([s.value for s in TERMINAL]))
    )
    if active:
        raise DatasetInUseError(f"dataset {dataset.id} is used by {active} unfinished job(s)")
    directory = store.dataset_dir(dataset.id)
    session.delete(dataset)
    session.commit()
    store.remove_tree(directory)
