
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt/i10/store/buildcache.c" "store/CMakeFiles/cstore.dir/buildcache.c.o" "gcc" "store/CMakeFiles/cstore.dir/buildcache.c.o.d"
  "/work/wt/i10/store/cancel.c" "store/CMakeFiles/cstore.dir/cancel.c.o" "gcc" "store/CMakeFiles/cstore.dir/cancel.c.o.d"
  "/work/wt/i10/store/chunker.c" "store/CMakeFiles/cstore.dir/chunker.c.o" "gcc" "store/CMakeFiles/cstore.dir/chunker.c.o.d"
  "/work/wt/i10/store/commit.c" "store/CMakeFiles/cstore.dir/commit.c.o" "gcc" "store/CMakeFiles/cstore.dir/commit.c.o.d"
  "/work/wt/i10/store/compress.c" "store/CMakeFiles/cstore.dir/compress.c.o" "gcc" "store/CMakeFiles/cstore.dir/compress.c.o.d"
  "/work/wt/i10/store/content.c" "store/CMakeFiles/cstore.dir/content.c.o" "gcc" "store/CMakeFiles/cstore.dir/content.c.o.d"
  "/work/wt/i10/store/db.c" "store/CMakeFiles/cstore.dir/db.c.o" "gcc" "store/CMakeFiles/cstore.dir/db.c.o.d"
  "/work/wt/i10/store/digestset.c" "store/CMakeFiles/cstore.dir/digestset.c.o" "gcc" "store/CMakeFiles/cstore.dir/digestset.c.o.d"
  "/work/wt/i10/store/du.c" "store/CMakeFiles/cstore.dir/du.c.o" "gcc" "store/CMakeFiles/cstore.dir/du.c.o.d"
  "/work/wt/i10/store/error.c" "store/CMakeFiles/cstore.dir/error.c.o" "gcc" "store/CMakeFiles/cstore.dir/error.c.o.d"
  "/work/wt/i10/store/export.c" "store/CMakeFiles/cstore.dir/export.c.o" "gcc" "store/CMakeFiles/cstore.dir/export.c.o.d"
  "/work/wt/i10/store/export_archive.c" "store/CMakeFiles/cstore.dir/export_archive.c.o" "gcc" "store/CMakeFiles/cstore.dir/export_archive.c.o.d"
  "/work/wt/i10/store/export_blob.c" "store/CMakeFiles/cstore.dir/export_blob.c.o" "gcc" "store/CMakeFiles/cstore.dir/export_blob.c.o.d"
  "/work/wt/i10/store/export_dir.c" "store/CMakeFiles/cstore.dir/export_dir.c.o" "gcc" "store/CMakeFiles/cstore.dir/export_dir.c.o.d"
  "/work/wt/i10/store/export_oci.c" "store/CMakeFiles/cstore.dir/export_oci.c.o" "gcc" "store/CMakeFiles/cstore.dir/export_oci.c.o.d"
  "/work/wt/i10/store/feeder.c" "store/CMakeFiles/cstore.dir/feeder.c.o" "gcc" "store/CMakeFiles/cstore.dir/feeder.c.o.d"
  "/work/wt/i10/store/fsck.c" "store/CMakeFiles/cstore.dir/fsck.c.o" "gcc" "store/CMakeFiles/cstore.dir/fsck.c.o.d"
  "/work/wt/i10/store/fsentry.c" "store/CMakeFiles/cstore.dir/fsentry.c.o" "gcc" "store/CMakeFiles/cstore.dir/fsentry.c.o.d"
  "/work/wt/i10/store/gc.c" "store/CMakeFiles/cstore.dir/gc.c.o" "gcc" "store/CMakeFiles/cstore.dir/gc.c.o.d"
  "/work/wt/i10/store/image.c" "store/CMakeFiles/cstore.dir/image.c.o" "gcc" "store/CMakeFiles/cstore.dir/image.c.o.d"
  "/work/wt/i10/store/image_list.c" "store/CMakeFiles/cstore.dir/image_list.c.o" "gcc" "store/CMakeFiles/cstore.dir/image_list.c.o.d"
  "/work/wt/i10/store/image_tag.c" "store/CMakeFiles/cstore.dir/image_tag.c.o" "gcc" "store/CMakeFiles/cstore.dir/image_tag.c.o.d"
  "/work/wt/i10/store/ingest.c" "store/CMakeFiles/cstore.dir/ingest.c.o" "gcc" "store/CMakeFiles/cstore.dir/ingest.c.o.d"
  "/work/wt/i10/store/ingest_archive.c" "store/CMakeFiles/cstore.dir/ingest_archive.c.o" "gcc" "store/CMakeFiles/cstore.dir/ingest_archive.c.o.d"
  "/work/wt/i10/store/ingest_dir.c" "store/CMakeFiles/cstore.dir/ingest_dir.c.o" "gcc" "store/CMakeFiles/cstore.dir/ingest_dir.c.o.d"
  "/work/wt/i10/store/ingest_tar.c" "store/CMakeFiles/cstore.dir/ingest_tar.c.o" "gcc" "store/CMakeFiles/cstore.dir/ingest_tar.c.o.d"
  "/work/wt/i10/store/lease.c" "store/CMakeFiles/cstore.dir/lease.c.o" "gcc" "store/CMakeFiles/cstore.dir/lease.c.o.d"
  "/work/wt/i10/store/load.c" "store/CMakeFiles/cstore.dir/load.c.o" "gcc" "store/CMakeFiles/cstore.dir/load.c.o.d"
  "/work/wt/i10/store/load_manifest.c" "store/CMakeFiles/cstore.dir/load_manifest.c.o" "gcc" "store/CMakeFiles/cstore.dir/load_manifest.c.o.d"
  "/work/wt/i10/store/load_source.c" "store/CMakeFiles/cstore.dir/load_source.c.o" "gcc" "store/CMakeFiles/cstore.dir/load_source.c.o.d"
  "/work/wt/i10/store/merged.c" "store/CMakeFiles/cstore.dir/merged.c.o" "gcc" "store/CMakeFiles/cstore.dir/merged.c.o.d"
  "/work/wt/i10/store/oneshot.c" "store/CMakeFiles/cstore.dir/oneshot.c.o" "gcc" "store/CMakeFiles/cstore.dir/oneshot.c.o.d"
  "/work/wt/i10/store/record.c" "store/CMakeFiles/cstore.dir/record.c.o" "gcc" "store/CMakeFiles/cstore.dir/record.c.o.d"
  "/work/wt/i10/store/rmtree.c" "store/CMakeFiles/cstore.dir/rmtree.c.o" "gcc" "store/CMakeFiles/cstore.dir/rmtree.c.o.d"
  "/work/wt/i10/store/rootfs.c" "store/CMakeFiles/cstore.dir/rootfs.c.o" "gcc" "store/CMakeFiles/cstore.dir/rootfs.c.o.d"
  "/work/wt/i10/store/snapshot.c" "store/CMakeFiles/cstore.dir/snapshot.c.o" "gcc" "store/CMakeFiles/cstore.dir/snapshot.c.o.d"
  "/work/wt/i10/store/snapshot_diff.c" "store/CMakeFiles/cstore.dir/snapshot_diff.c.o" "gcc" "store/CMakeFiles/cstore.dir/snapshot_diff.c.o.d"
  "/work/wt/i10/store/snapshot_unpack.c" "store/CMakeFiles/cstore.dir/snapshot_unpack.c.o" "gcc" "store/CMakeFiles/cstore.dir/snapshot_unpack.c.o.d"
  "/work/wt/i10/store/statcache.c" "store/CMakeFiles/cstore.dir/statcache.c.o" "gcc" "store/CMakeFiles/cstore.dir/statcache.c.o.d"
  "/work/wt/i10/store/store.c" "store/CMakeFiles/cstore.dir/store.c.o" "gcc" "store/CMakeFiles/cstore.dir/store.c.o.d"
  "/work/wt/i10/store/strv.c" "store/CMakeFiles/cstore.dir/strv.c.o" "gcc" "store/CMakeFiles/cstore.dir/strv.c.o.d"
  "/work/wt/i10/store/tarsplit.c" "store/CMakeFiles/cstore.dir/tarsplit.c.o" "gcc" "store/CMakeFiles/cstore.dir/tarsplit.c.o.d"
  "/work/wt/i10/store/tarwrite.c" "store/CMakeFiles/cstore.dir/tarwrite.c.o" "gcc" "store/CMakeFiles/cstore.dir/tarwrite.c.o.d"
  "/work/wt/i10/store/tree.c" "store/CMakeFiles/cstore.dir/tree.c.o" "gcc" "store/CMakeFiles/cstore.dir/tree.c.o.d"
  "/work/wt/i10/store/units.c" "store/CMakeFiles/cstore.dir/units.c.o" "gcc" "store/CMakeFiles/cstore.dir/units.c.o.d"
  "/work/wt/i10/store/util.c" "store/CMakeFiles/cstore.dir/util.c.o" "gcc" "store/CMakeFiles/cstore.dir/util.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
