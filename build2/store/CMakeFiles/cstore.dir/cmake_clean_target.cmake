file(REMOVE_RECURSE
  "libcstore.a"
)
