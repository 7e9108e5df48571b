"""faillite.sim: the discrete-event simulator of large edge clusters."""
