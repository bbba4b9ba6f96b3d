"""Composite entries: a catalog entry whose input is made by another entry (`chain:` in its manifest).

The AudioSet attention heads take 10 x 128 VGGish + PCA codes; with `chain: {embedder: vggish, ...}`
they take a waveform: VGGish's front end and network make one embedding per 0.96 s, the host
postprocessor (postprocess.py) turns them into 8-bit codes, ten consecutive codes mapped to float by
(code - 128) / 128 make one input of the head. Each stage stays a catalog entry of its own,
converted and verified against its own source; the chain is verified end to end (verify.py)
against the chained source frameworks.

- postprocess.py: VGGish's PCA, clip and 8-bit codes (numpy, on the host for every runtime);
- runner.py: the stages resolved from the catalog, the chained Runner, what predict opens;
- verify.py: the end-to-end check and the derivation of its tolerance.
"""
