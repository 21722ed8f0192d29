"""What only training needs: losses and the GFP-GAN recipe, discriminators, the extrinsic cleaning pass, test-set
scores, and what both training scripts share: checkpoints with their EMA (``checkpoints``), validation grids and the
time budget (``utils``)."""
