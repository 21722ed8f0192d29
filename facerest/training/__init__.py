"""What only training needs: losses, discriminators, checkpoint and logging helpers."""
