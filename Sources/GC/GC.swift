enum GCPlaceholder {}
