"""The papers this project implements, defined once: cite them by author and year.

Code comments, docstrings, help texts and model cards say ``Futrega et al. 2021`` (the short
citation of :data:`REFERENCES`); the README's *Papers* section lists the full entries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One paper.

    Attributes:
        key: Identifier used in code (``futrega2021``).
        authors: First author(s) as cited (``Futrega et al.``).
        year: Publication year, or ``None`` when the paper gives none.
        title: Full title.
        venue: Where it appeared.
        url: A stable link (DOI or arXiv), when one is known.
        takes: What this project takes from it.
    """

    key: str
    authors: str
    year: int | None
    title: str
    venue: str
    url: str | None
    takes: str

    @property
    def cite(self) -> str:
        """Short author-year citation, e.g. ``Futrega et al. 2021``."""
        return f"{self.authors} {self.year}" if self.year else self.authors

    @property
    def full(self) -> str:
        """One-line full reference."""
        link = f" {self.url}" if self.url else ""
        return f"{self.cite}, {self.title}, {self.venue}.{link}"


REFERENCES: dict[str, Reference] = {
    r.key: r
    for r in (
        Reference(
            "ashtari2021",
            "Ashtari et al.",
            2021,
            "Low-Rank Convolutional Networks for Brain Tumor Segmentation",
            "BrainLes 2020 (BraTS 2020), Springer LNCS",
            None,
            "Res-U-Net with CP low-rank convolutions, softmax Dice, hierarchical thresholds",
        ),
        Reference(
            "jiang2020",
            "Jiang et al.",
            2020,
            "Two-Stage Cascaded U-Net: 1st Place Solution to BraTS Challenge 2019 Segmentation Task",
            "BrainLes 2019, Springer LNCS",
            "https://doi.org/10.1007/978-3-030-46640-4_22",
            "two-stage cascade, region Dice over stages, flip TTA, small-ET replacement",
        ),
        Reference(
            "henry2021",
            "Henry et al.",
            2021,
            "Brain tumor segmentation with self-ensembled, deeply-supervised 3D U-net neural "
            "networks: a BraTS 2020 challenge solution",
            "BrainLes 2020 (BraTS 2020), Springer LNCS",
            "https://arxiv.org/abs/2011.01045",
            "deeply supervised 3D U-Net, SWA, label reconstruction, merge table of two label maps",
        ),
        Reference(
            "futrega2021",
            "Futrega et al.",
            2021,
            "Optimized U-Net for Brain Tumor Segmentation",
            "BrainLes 2021 (BraTS 2021)",
            "https://arxiv.org/abs/2110.03352",
            "nnU-Net-style U-Net, Dice + BCE, deep supervision, Gaussian sliding window, "
            "thresholds 0.45/0.4/0.45 and the ET component rule",
        ),
        Reference(
            "adeniji_liu",
            "Adeniji & Liu",
            None,
            "Volumetric Semantic Segmentation of Glioblastoma Tumors from MRI Studies",
            "Stanford University report (SegResNet with VAE regularisation after Myronenko 2018)",
            None,
            "encoder-decoder with VAE branch, Dice + 0.1 L2 + 0.1 KL, squeeze-excitation",
        ),
    )
}


def cite(key: str) -> str:
    """Short citation of the paper ``key`` (raises ``KeyError`` for an unknown key)."""
    return REFERENCES[key].cite


def paper_title(key: str) -> str:
    """Citation and title of the paper ``key``, e.g. ``Futrega et al. 2021, Optimized U-Net ...``."""
    ref = REFERENCES[key]
    return f"{ref.cite}, {ref.title}"
