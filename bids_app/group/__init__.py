"""Group level: cohort, window cache, 3D-CNN, connectivity states, statistics, report.

Import-light: submodules are imported where needed (torch only inside ``group.cnn``'s
model/training modules), so ``import bids_app.group`` stays cheap for CLI start-up.
"""
