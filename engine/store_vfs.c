/*
 * store_vfs.c: a fault-injecting SQLite VFS for the storage tests
 * (docs/durability.md, "Storage faults").
 *
 * "weft-fault" wraps the default VFS (unix) and passes every call through,
 * except that the fault points named in $WEFT_FAULT make a file's xWrite
 * or xSync fail as a sick or full disk would:
 *
 *   sqlite.write_error[:N]   the Nth xWrite returns SQLITE_IOERR_WRITE
 *   sqlite.full[:N]          the Nth and every later xWrite returns
 *                            SQLITE_FULL (the disk filled up and stays full)
 *   sqlite.fsync_error[:N]   the Nth xSync returns SQLITE_IOERR_FSYNC
 *
 * Writes and syncs are counted over every file SQLite opens through the
 * VFS (the database, its WAL, temporary files).  The VFS is registered
 * (never as the default) only when $WEFT_FAULT names a sqlite point, so
 * without one the store opens on the default VFS and pays nothing.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "runtime/fault.h"
#include "engine/store.h"

#define VFS_NAME	"weft-fault"

/* A file of ours: the real file of the wrapped VFS follows it in memory. */
struct vfs_file {
	sqlite3_file	 base;
	sqlite3_file	*real;
};

static sqlite3_vfs	 vfs;
static sqlite3_vfs	*vfs_real;
static int		 vfs_full;	/* sqlite.full fired: it stays */

/* The real file behind one of ours. */
static sqlite3_file *
vfs_real_file(sqlite3_file *f)
{
	return ((struct vfs_file *)f)->real;
}

static int
vfs_close(sqlite3_file *f)
{
	sqlite3_file *r = vfs_real_file(f);
	int rc = SQLITE_OK;

	if (r->pMethods != NULL)
		rc = r->pMethods->xClose(r);
	f->pMethods = NULL;
	return rc;
}

static int
vfs_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xRead(r, buf, n, off);
}

/* A write, unless a fault point makes it fail. */
static int
vfs_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	sqlite3_file *r = vfs_real_file(f);

	if (vfs_full)
		return SQLITE_FULL;
	if (fault_hit("sqlite.full")) {
		vfs_full = 1;
		return SQLITE_FULL;
	}
	if (fault_hit("sqlite.write_error"))
		return SQLITE_IOERR_WRITE;
	return r->pMethods->xWrite(r, buf, n, off);
}

static int
vfs_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xTruncate(r, size);
}

/* A sync, unless sqlite.fsync_error makes it fail. */
static int
vfs_sync(sqlite3_file *f, int flags)
{
	sqlite3_file *r = vfs_real_file(f);

	if (fault_hit("sqlite.fsync_error"))
		return SQLITE_IOERR_FSYNC;
	return r->pMethods->xSync(r, flags);
}

static int
vfs_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xFileSize(r, size);
}

static int
vfs_lock(sqlite3_file *f, int level)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xLock(r, level);
}

static int
vfs_unlock(sqlite3_file *f, int level)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xUnlock(r, level);
}

static int
vfs_check_lock(sqlite3_file *f, int *out)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xCheckReservedLock(r, out);
}

static int
vfs_file_control(sqlite3_file *f, int op, void *arg)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xFileControl(r, op, arg);
}

static int
vfs_sector_size(sqlite3_file *f)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xSectorSize(r);
}

static int
vfs_device_chars(sqlite3_file *f)
{
	sqlite3_file *r = vfs_real_file(f);

	return r->pMethods->xDeviceCharacteristics(r);
}

/* The shared-memory and mmap methods exist from io_methods version 2 and
   3 on; a real file of an older version answers as if it had none. */
static int
vfs_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **p)
{
	sqlite3_file *r = vfs_real_file(f);

	if (r->pMethods->iVersion < 2)
		return SQLITE_IOERR_SHMMAP;
	return r->pMethods->xShmMap(r, pg, pgsz, extend, p);
}

static int
vfs_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	sqlite3_file *r = vfs_real_file(f);

	if (r->pMethods->iVersion < 2)
		return SQLITE_IOERR_SHMLOCK;
	return r->pMethods->xShmLock(r, off, n, flags);
}

static void
vfs_shm_barrier(sqlite3_file *f)
{
	sqlite3_file *r = vfs_real_file(f);

	if (r->pMethods->iVersion >= 2)
		r->pMethods->xShmBarrier(r);
}

static int
vfs_shm_unmap(sqlite3_file *f, int del)
{
	sqlite3_file *r = vfs_real_file(f);

	if (r->pMethods->iVersion < 2)
		return SQLITE_OK;
	return r->pMethods->xShmUnmap(r, del);
}

static int
vfs_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
	sqlite3_file *r = vfs_real_file(f);

	if (r->pMethods->iVersion < 3) {
		*p = NULL;
		return SQLITE_OK;
	}
	return r->pMethods->xFetch(r, off, n, p);
}

static int
vfs_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	sqlite3_file *r = vfs_real_file(f);

	if (r->pMethods->iVersion < 3)
		return SQLITE_OK;
	return r->pMethods->xUnfetch(r, off, p);
}

static const sqlite3_io_methods vfs_methods = {
	3,
	vfs_close,
	vfs_read,
	vfs_write,
	vfs_truncate,
	vfs_sync,
	vfs_file_size,
	vfs_lock,
	vfs_unlock,
	vfs_check_lock,
	vfs_file_control,
	vfs_sector_size,
	vfs_device_chars,
	vfs_shm_map,
	vfs_shm_lock,
	vfs_shm_barrier,
	vfs_shm_unmap,
	vfs_fetch,
	vfs_unfetch,
};

/* Open the real file in the memory after ours and wrap it. */
static int
vfs_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *f, int flags,
    int *out_flags)
{
	struct vfs_file *vf = (struct vfs_file *)f;
	int rc;

	(void)v;
	vf->real = (sqlite3_file *)&vf[1];
	rc = vfs_real->xOpen(vfs_real, name, vf->real, flags, out_flags);
	/* Without methods SQLite will not call xClose on the file. */
	f->pMethods = vf->real->pMethods != NULL ? &vfs_methods : NULL;
	return rc;
}

/* Whether $WEFT_FAULT names a point of this VFS. */
static int
vfs_wanted(void)
{
	const char *env = getenv("WEFT_FAULT");

	return env != NULL && strstr(env, "sqlite.") != NULL;
}

const char *
store_vfs_name(void)
{
	static int state = -1;	/* -1 not decided, 0 no, 1 registered */

	if (state >= 0)
		return state ? VFS_NAME : NULL;
	state = 0;
	if (!vfs_wanted() || (vfs_real = sqlite3_vfs_find(NULL)) == NULL)
		return NULL;
	/* Every method but xOpen is the real VFS's own; they find what they
	   need in pAppData, copied with them. */
	vfs = *vfs_real;
	vfs.pNext = NULL;
	vfs.zName = VFS_NAME;
	vfs.szOsFile = (int)sizeof(struct vfs_file) + vfs_real->szOsFile;
	vfs.xOpen = vfs_open;
	if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK)
		return NULL;
	state = 1;
	return VFS_NAME;
}
