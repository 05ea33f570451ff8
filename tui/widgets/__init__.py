"""The four panes and the small widgets they are built from."""
