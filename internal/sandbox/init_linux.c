//go:build linux && cgo

// The sandbox init in C, and the spawner that forks it. A binary that
// imports this package is re-executed once per Manager with argv[0]
// "ember-sandbox-spawner" (spawner_linux.go); this constructor runs
// before the Go runtime and before any Go package's init, so the spawner
// and the inits it forks do not pay for the Go runtime's start nor for
// the package inits of a big binary (the AWS SDK's tables, ...: about 13
// ms in the ember binary). The spawner builds the part of the root that
// is the same in every sandbox once, from a base config (setup_template,
// below), then forks one init per request, with new namespaces. Each
// init executes the plan the parent sends (childConfig in init_linux.go,
// which documents the encoding) with the same steps as the Go init
// (runInit), which stays as the fallback of builds without cgo; it
// mounts /proc and /dev before the sandbox's trees and /tmp where the Go
// init mounts them after. In any other process, whatever its argv[0],
// the constructor returns at once.
//
// Every failure is reported to the parent on fd 4 as the failed step, a
// NUL and the errno in decimal, and ends the process (_exit(1)); the
// parent renders it as the Go init would. On success the init's final
// execve closes fd 4 (close-on-exec), which the parent sees as EOF.
//
// The processes are single-threaded here (no Go runtime), so the plain
// per-thread system calls (setresuid, capset, ...) apply to the whole
// process.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

// Must equal SpawnerArg0 (checked by TestCSpawnerArg0).
#define EMBER_SPAWNER_ARG0 "ember-sandbox-spawner"

const char *ember_spawner_arg0(void) { return EMBER_SPAWNER_ARG0; }

// File descriptors, as fdSync, fdErr and fdParent in init_linux.go. Unlike
// the Go init's, FD_SYNC is a unix socket: the C init may be started
// before its sandbox is known (the init pool, initpool_linux.go), so its
// stdout, stderr and mount trees come with the config (SCM_RIGHTS).
enum { FD_SYNC = 3, FD_ERR = 4, FD_PARENT = 5 };

#define GO_BYTE 'G'          // goByte
#define MAX_CONFIG (16 << 20) // maxConfig
#define NEW_ROOT "/tmp"       // newRootAt

// Mount API constants, for C libraries that predate them.
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

// struct mount_attr of mount_setattr(2), under a name of our own.
struct ember_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

// Securebits, as lockedSecurebits in init_linux.go.
#define LOCKED_SECUREBITS ((1 << 0) | (1 << 1) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7))

// fail reports "<step>\0<errno>" on FD_ERR and exits. The step is
// formatted like printf.
static void fail(int err, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail(int err, const char *fmt, ...) {
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg - 16, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof msg - 17)
		n = sizeof msg - 17;
	n += 1 + snprintf(msg + n + 1, 16, "%d", err);
	ssize_t w = write(FD_ERR, msg, n);
	(void)w;
	_exit(1);
}

// read_full fills buf from fd; EOF is an error.
static void read_full(int fd, void *buf, size_t len, const char *what) {
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(errno, "%s", what);
		if (n == 0)
			fail(0, "%s: unexpected EOF", what);
		p += n;
		len -= n;
	}
}

// The config, parsed in place: strings point into its buffer, each NUL
// terminated by the encoding.
struct config {
	char *hostname, *path, **argv, **env, *dir, **targets, *tmp_opts;
	uint32_t uid, gid;
	char **system_dirs, **devices, **proc_masked, **proc_read_only;
	char **seccomp;
	uint32_t *seccomp_len;
	uint32_t ntargets, nseccomp;
	int *tree_fds; // the i-th target's detached mount tree
};

// template_base is the spawner's base config (setup_template); its
// inits, forks of the spawner, have it too (setup_base).
static struct config template_base;

struct cursor {
	char *p, *end;
};

static uint32_t get_u32(struct cursor *c) {
	uint32_t v;
	if (c->end - c->p < 4)
		fail(0, "read config: malformed");
	memcpy(&v, c->p, 4);
	c->p += 4;
	return v;
}

static char *get_str(struct cursor *c, uint32_t *len) {
	uint32_t n = get_u32(c);
	if ((uint64_t)(c->end - c->p) < (uint64_t)n + 1 || c->p[n] != 0)
		fail(0, "read config: malformed");
	char *s = c->p;
	c->p += n + 1;
	if (len)
		*len = n;
	return s;
}

// get_list returns a NULL-terminated array of the list's strings (and
// their lengths in *lens if asked).
static char **get_list(struct cursor *c, uint32_t *count, uint32_t **lens) {
	uint32_t n = get_u32(c);
	if (n > (uint64_t)(c->end - c->p))
		fail(0, "read config: malformed");
	char **l = calloc(n + 1, sizeof *l);
	uint32_t *ls = calloc(n + 1, sizeof *ls);
	if (!l || !ls)
		fail(ENOMEM, "read config");
	for (uint32_t i = 0; i < n; i++)
		l[i] = get_str(c, &ls[i]);
	if (count)
		*count = n;
	if (lens)
		*lens = ls;
	else
		free(ls);
	return l;
}

// MAX_FDS bounds the descriptors sent with the config: stdout, stderr and
// one mount tree per Spec.Mount.
#define MAX_FDS 250

// recv_header reads the config's 4-byte length and the descriptors sent
// with it (SCM_RIGHTS, received close-on-exec), returning their count.
static int recv_header(uint32_t *size, int *fds) {
	union {
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = size, .iov_len = 4};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	ssize_t n;
	do
		n = recvmsg(FD_SYNC, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fail(errno, "read config");
	if (n == 0)
		fail(0, "read config: unexpected EOF");
	if (msg.msg_flags & MSG_CTRUNC)
		fail(0, "read config: too many descriptors");
	int nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds + nfds, CMSG_DATA(c), k * sizeof(int));
		nfds += k;
	}
	if (n < 4)
		read_full(FD_SYNC, (char *)size + n, 4 - n, "read config");
	return nfds;
}

// read_config reads one config. The base config (base set: the
// spawner's, once) comes with no descriptors: only its system
// directories, devices, /proc lists and targets (the template's mount
// points) are used (setup_template, setup_base). Each init reads its
// sandbox's own config.
static void read_config(struct config *cfg, int base) {
	uint32_t size;
	int fds[MAX_FDS];
	int nfds = recv_header(&size, fds);
	if (size > MAX_CONFIG)
		fail(0, "read config: config of %u bytes", size);
	char *buf = malloc(size + 1);
	if (!buf)
		fail(ENOMEM, "read config");
	read_full(FD_SYNC, buf, size, "read config");
	struct cursor c = {buf, buf + size};
	cfg->hostname = get_str(&c, NULL);
	cfg->path = get_str(&c, NULL);
	cfg->argv = get_list(&c, NULL, NULL);
	cfg->env = get_list(&c, NULL, NULL);
	cfg->dir = get_str(&c, NULL);
	cfg->targets = get_list(&c, &cfg->ntargets, NULL);
	cfg->tmp_opts = get_str(&c, NULL);
	cfg->uid = get_u32(&c);
	cfg->gid = get_u32(&c);
	cfg->system_dirs = get_list(&c, NULL, NULL);
	cfg->devices = get_list(&c, NULL, NULL);
	cfg->proc_masked = get_list(&c, NULL, NULL);
	cfg->proc_read_only = get_list(&c, NULL, NULL);
	cfg->seccomp = get_list(&c, &cfg->nseccomp, &cfg->seccomp_len);
	if (c.p != c.end)
		fail(0, "read config: malformed");
	if (base) {
		if (nfds != 0)
			fail(0, "read config: a base config with %d descriptors", nfds);
		return;
	}
	// stdout, stderr, then the mount trees.
	if ((uint32_t)nfds != 2 + cfg->ntargets)
		fail(0, "read config: %d descriptors for %u mounts", nfds, cfg->ntargets);
	for (int i = 0; i < 2; i++) {
		if (dup2(fds[i], 1 + i) < 0)
			fail(errno, "%s", i == 0 ? "stdout" : "stderr");
		close(fds[i]);
	}
	cfg->tree_fds = calloc(cfg->ntargets + 1, sizeof(int));
	if (!cfg->tree_fds)
		fail(ENOMEM, "read config");
	memcpy(cfg->tree_fds, fds + 2, cfg->ntargets * sizeof(int));
}

// join writes a/b into out (PATH_MAX bytes) or fails.
static char *join(char *out, const char *a, const char *b) {
	if (snprintf(out, 4096, "%s/%s", a, b) >= 4096)
		fail(ENAMETOOLONG, "%s/%s", a, b);
	return out;
}

// bind_tree bind-mounts src (with its submounts) on dst and sets attrs on every
// mount of the new tree, plus read-only if asked (as bind in
// init_linux.go).
static void bind_tree(const char *src, const char *dst, int read_only, uint64_t attrs) {
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0)
		fail(errno, "bind %s", dst);
	if (read_only)
		attrs |= MOUNT_ATTR_RDONLY;
	struct ember_mount_attr a = {.attr_set = attrs};
	if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &a, sizeof a) == 0)
		return;
	if (errno != ENOSYS)
		fail(errno, "set attributes of %s", dst);
	// Before Linux 5.12: the top mount only.
	unsigned long flags = MS_BIND | MS_REMOUNT;
	if (attrs & MOUNT_ATTR_RDONLY)
		flags |= MS_RDONLY;
	if (attrs & MOUNT_ATTR_NOSUID)
		flags |= MS_NOSUID;
	if (attrs & MOUNT_ATTR_NODEV)
		flags |= MS_NODEV;
	if (attrs & MOUNT_ATTR_NOEXEC)
		flags |= MS_NOEXEC;
	if (mount("", dst, NULL, flags, NULL) != 0)
		fail(errno, "set attributes of %s", dst);
}

// mk_mountpoint creates target (a directory, or an empty file when !dir)
// and its parents under root, refusing to follow any symlink (as
// mkMountpoint in init_linux.go), and returns its path in out.
static void mk_mountpoint(char *out, const char *root, const char *target, int dir) {
	size_t rl = strlen(root), tl = strlen(target);
	if (rl + tl + 1 > 4096)
		fail(ENAMETOOLONG, "mount target %s", target);
	memcpy(out, root, rl);
	memcpy(out + rl, target, tl + 1); // target is clean and absolute
	// Walk the components: each '/' after root ends one.
	for (char *p = out + rl + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		int last = *p == 0;
		*p = 0;
		struct stat st;
		if (lstat(out, &st) == 0) {
			if (S_ISLNK(st.st_mode))
				fail(0, "mount target %s: %s is a symlink", target, out + rl);
			if ((!last || dir) && !S_ISDIR(st.st_mode))
				fail(0, "mount target %s: %s is not a directory", target, out + rl);
		} else if (errno != ENOENT) {
			fail(errno, "mount target %s", target);
		} else if (!last || dir) {
			if (mkdir(out, 0755) != 0)
				fail(errno, "mount target %s", target);
		} else {
			int fd = open(out, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
			if (fd < 0)
				fail(errno, "mount target %s", target);
			close(fd);
		}
		if (last)
			return;
		*p = '/';
	}
}

// mask_proc hides the masked paths (files under /dev/null, directories
// under an empty read-only tmpfs) and makes the read-only ones read-only.
static void mask_proc(const char *proc, char **masked, char **read_only) {
	char p[4096];
	for (; *masked; masked++) {
		struct stat st;
		if (lstat(join(p, proc, *masked), &st) != 0)
			continue;
		int r;
		if (S_ISDIR(st.st_mode))
			r = mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,nr_inodes=1");
		else
			r = mount("/dev/null", p, NULL, MS_BIND, NULL);
		if (r != 0)
			fail(errno, "mask /proc/%s", *masked);
	}
	for (; *read_only; read_only++) {
		if (access(join(p, proc, *read_only), F_OK) != 0)
			continue;
		bind_tree(p, p, 1, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	}
}

// mount_shm mounts the sandbox's own /dev/shm on p.
static void mount_shm(const char *p) {
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64m,mode=1777") != 0)
		fail(errno, "mount /dev/shm");
}

// setup_dev makes the sandbox's /dev: a read-only tmpfs with host device
// nodes bound in, the usual symlinks, and a /dev/shm directory, on which
// it mounts a small writable tmpfs if shm is set (the template leaves
// that to each init).
static void setup_dev(const char *dev, char **devices, int shm) {
	char p[4096], host[4096];
	if (mkdir(dev, 0755) != 0)
		fail(errno, "mkdir /dev");
	if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755") != 0)
		fail(errno, "mount /dev");
	for (; *devices; devices++) {
		struct stat st;
		if (stat(join(host, "/dev", *devices), &st) != 0)
			continue;
		int fd = open(join(p, dev, *devices), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
		if (fd < 0)
			fail(errno, "create /dev/%s", *devices);
		close(fd);
		if (mount(host, p, NULL, MS_BIND, NULL) != 0)
			fail(errno, "bind /dev/%s", *devices);
	}
	static const char *links[][2] = {
	    {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (symlink(links[i][0], join(p, dev, links[i][1])) != 0)
			fail(errno, "symlink /dev/%s", links[i][1]);
	if (mkdir(join(p, dev, "shm"), 01777) != 0)
		fail(errno, "mkdir /dev/shm");
	if (shm)
		mount_shm(p);
	if (mount("", dev, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) != 0)
		fail(errno, "remount /dev read-only");
}

// make_root mounts a root tmpfs on root with the host's system
// directories in it (read-only) and an empty /proc.
static void make_root(const char *root, struct config *c) {
	char p[4096], host[4096];
	if (mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		fail(errno, "make / private");
	if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=1024,mode=755") != 0)
		fail(errno, "mount root tmpfs");
	for (char **d = c->system_dirs; *d; d++) {
		struct stat st;
		if (lstat(join(host, "", *d), &st) != 0)
			continue;
		join(p, root, *d);
		if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlink(host, target, sizeof target - 1);
			if (n < 0)
				fail(errno, "symlink /%s", *d);
			target[n] = 0;
			if (symlink(target, p) != 0)
				fail(errno, "symlink /%s", *d);
		} else if (S_ISDIR(st.st_mode)) {
			if (mkdir(p, 0755) != 0)
				fail(errno, "mkdir /%s", *d);
			bind_tree(host, p, 1, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
		}
	}
	if (mkdir(join(p, root, "proc"), 0555) != 0)
		fail(errno, "mkdir /proc");
}

// mount_proc mounts the sandbox's /proc (of its PID namespace) on p and
// masks it.
static void mount_proc(const char *p, struct config *c) {
	if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		fail(errno, "mount /proc");
	mask_proc(p, c->proc_masked, c->proc_read_only);
}

// pivot makes root (a mount point) the root of this mount namespace,
// drops the old root and makes the new one read-only.
static void pivot(const char *root) {
	if (chdir(root) != 0)
		fail(errno, "chdir new root");
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// "." then drops the old root (see pivot_root(2)).
	if (syscall(SYS_pivot_root, ".", ".") != 0)
		fail(errno, "pivot_root");
	if (umount2(".", MNT_DETACH) != 0)
		fail(errno, "detach old root");
	if (chdir("/") != 0)
		fail(errno, "chdir /");
	if (mount("", "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
		fail(errno, "remount / read-only");
}

// The sandbox's file system view, as setupRoot in init_linux.go makes it
// in one step, comes from one of two paths here.
//
// The template (the usual path): the spawner builds, once, in a mount
// namespace of its own, the part of the root that is the same in every
// sandbox (setup_template: the root tmpfs, the host's system
// directories, /dev with its device nodes, empty mount points for /proc,
// /dev/shm, /tmp and the base config's targets, all read-only) and
// pivots into it. Each init is cloned with a copy of that namespace, so
// its root is ready: it mounts its own /proc, /dev/shm and /tmp and its
// trees on the mount points (setup_from_template), with no pivot_root of
// its own. pivot_root walks every thread on the host (chroot_fs_refs):
// with a thousand idle sandboxes that was 0.7 ms of each new sandbox's
// set-up, and the template's mounts another 0.5 ms. The mounts of the
// copy are the template's: the root and /dev file systems are one
// read-only tmpfs each, shared by every sandbox, holding only what the
// spawner made before any sandbox ran (the base config's targets are
// the worker's usual mount points: /var/task, /opt, /var/runtime).
//
// A sandbox whose targets are not all in the template (a mount point the
// template lacks, or a file where it has a directory) takes the full
// path instead: setup_base makes a root of its own from the template's
// directories and setup_rest pivots into it, as every init did before
// the template.

// setup_template builds the template at NEW_ROOT and pivots into it (the
// spawner, once).
static void setup_template(struct config *c) {
	char p[4096];
	const char *root = NEW_ROOT;
	if (unshare(CLONE_NEWNS) != 0)
		fail(errno, "unshare mount ns");
	make_root(root, c);
	setup_dev(join(p, root, "dev"), c->devices, 0);
	if (mkdir(join(p, root, "tmp"), 01777) != 0)
		fail(errno, "mkdir /tmp");
	for (uint32_t i = 0; i < c->ntargets; i++)
		mk_mountpoint(p, root, c->targets[i], 1);
	pivot(root);
}

// template_fits says whether every target of c has its mount point in
// the template: a directory for a directory tree, a file for a file, with
// no symbolic link on the way, and none is under another.
static int template_fits(struct config *c) {
	// A target under another would be looked up through the tree mounted
	// there (the sandbox's own content): the full path's mk_mountpoint
	// refuses symbolic links on the way, so nested targets take it.
	for (uint32_t i = 0; i < c->ntargets; i++)
		for (uint32_t j = 0; j < c->ntargets; j++) {
			size_t n = strlen(c->targets[i]);
			if (i != j && strncmp(c->targets[i], c->targets[j], n) == 0 && c->targets[j][n] == '/')
				return 0;
		}
	for (uint32_t i = 0; i < c->ntargets; i++) {
		struct stat tree, st;
		if (fstat(c->tree_fds[i], &tree) != 0)
			fail(errno, "mount %s", c->targets[i]);
		char p[4096];
		size_t tl = strlen(c->targets[i]);
		if (tl >= sizeof p)
			return 0;
		memcpy(p, c->targets[i], tl + 1);
		// Each prefix ending at a '/' (after the first), then the whole.
		for (char *q = p + 1;; q++) {
			if (*q != '/' && *q != 0)
				continue;
			int last = *q == 0;
			*q = 0;
			if (lstat(p, &st) != 0 || S_ISLNK(st.st_mode))
				return 0;
			if (last)
				break;
			if (!S_ISDIR(st.st_mode))
				return 0;
			*q = '/';
		}
		if (S_ISDIR(st.st_mode) != S_ISDIR(tree.st_mode))
			return 0;
	}
	return 1;
}

// setup_from_template mounts the sandbox's own file systems and trees on
// the template's mount points (the init's root is the template already).
static void setup_from_template(struct config *c) {
	mount_proc("/proc", &template_base);
	mount_shm("/dev/shm");
	for (uint32_t i = 0; i < c->ntargets; i++) {
		if (syscall(SYS_move_mount, c->tree_fds[i], "", AT_FDCWD, c->targets[i], MOVE_MOUNT_F_EMPTY_PATH) != 0)
			fail(errno, "mount %s", c->targets[i]);
		close(c->tree_fds[i]);
	}
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, c->tmp_opts) != 0)
		fail(errno, "mount /tmp");
	if (chdir("/") != 0)
		fail(errno, "chdir /");
}

// setup_base and setup_rest are the full path: setup_base makes the part
// that is the same in every sandbox (the root tmpfs, the system
// directories, /proc and /dev, from the template's), setup_rest the
// sandbox's own, and pivots.
static void setup_base(struct config *c) {
	char p[4096];
	const char *root = NEW_ROOT;
	make_root(root, c);
	mount_proc(join(p, root, "proc"), c);
	setup_dev(join(p, root, "dev"), c->devices, 1);
}

// setup_rest mounts the sandbox's own trees and /tmp into the root that
// setup_base made, and pivots into it (read-only from then on).
static void setup_rest(struct config *c) {
	char p[4096];
	const char *root = NEW_ROOT;
	// The Mounts arrive as detached trees that the parent cloned, with
	// their attributes set.
	for (uint32_t i = 0; i < c->ntargets; i++) {
		int fd = c->tree_fds[i];
		struct stat st;
		if (fstat(fd, &st) != 0)
			fail(errno, "mount %s", c->targets[i]);
		mk_mountpoint(p, root, c->targets[i], S_ISDIR(st.st_mode));
		if (syscall(SYS_move_mount, fd, "", AT_FDCWD, p, MOVE_MOUNT_F_EMPTY_PATH) != 0)
			fail(errno, "mount %s", c->targets[i]);
		close(fd);
	}
	if (mkdir(join(p, root, "tmp"), 01777) != 0)
		fail(errno, "mkdir /tmp");
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, c->tmp_opts) != 0)
		fail(errno, "mount /tmp");
	pivot(root);
}

// loopback_up sets IFF_UP on "lo" (a new network namespace has it down).
static void loopback_up(void) {
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail(errno, "loopback");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		fail(errno, "loopback: get flags");
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
			fail(errno, "loopback: set flags");
	}
	close(fd);
}

// drop_privileges drops every capability and switches to uid/gid with no
// supplementary groups, in the order and with the checks of
// dropPrivileges in init_linux.go (which says why).
static void drop_privileges(uint32_t uid, uint32_t gid) {
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		fail(errno, "clear ambient capabilities");
	for (int c = 0;; c++) {
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL && c > 0)
			break;
		if (errno == EINVAL)
			fail(0, "drop bounding set: no capabilities known");
		fail(errno, "drop capability %d from the bounding set", c);
	}
	if (prctl(PR_SET_SECUREBITS, LOCKED_SECUREBITS, 0, 0, 0) != 0)
		fail(errno, "securebits");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		fail(errno, "no_new_privs");
	// Raw system calls: the C library's wrappers would signal the other
	// threads, of which there are none.
	if (syscall(SYS_setgroups, 0, NULL) != 0)
		fail(errno, "setgroups");
	if (syscall(SYS_setresgid, gid, gid, gid) != 0)
		fail(errno, "setresgid %u", gid);
	if (syscall(SYS_setresuid, uid, uid, uid) != 0)
		fail(errno, "setresuid %u", uid);
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct caps[2];
	memset(caps, 0, sizeof caps);
	if (syscall(SYS_capset, &hdr, caps) != 0)
		fail(errno, "capset");
	if (syscall(SYS_capget, &hdr, caps) != 0)
		fail(errno, "capget");
	for (int i = 0; i < 2; i++)
		if (caps[i].effective || caps[i].permitted || caps[i].inheritable)
			fail(0, "capabilities left after the drop");
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		fail(errno, "pdeathsig");
	struct pollfd pfd = {.fd = FD_PARENT, .events = POLLIN};
	if (poll(&pfd, 1, 0) > 0)
		fail(0, "parent exited");
}

// load_seccomp installs the filters (no_new_privs is set already).
static void load_seccomp(struct config *c) {
	for (uint32_t i = 0; i < c->nseccomp; i++) {
		uint32_t len = c->seccomp_len[i];
		if (len == 0 || len % 8 != 0 || len / 8 > 0xffff)
			fail(0, "seccomp: bad program length %u", len);
		// An aligned copy of the instructions.
		struct sock_filter *insts = malloc(len);
		if (!insts)
			fail(ENOMEM, "seccomp");
		memcpy(insts, c->seccomp[i], len);
		struct sock_fprog prog = {.len = len / 8, .filter = insts};
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
			fail(errno, "seccomp");
		free(insts);
	}
}

static void run_init(void) {
	for (int fd = FD_SYNC; fd <= FD_PARENT; fd++)
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
			fail(errno, "close-on-exec %d", fd);
	// The pipe may come non-blocking from the parent's Go runtime.
	int fl = fcntl(FD_SYNC, F_GETFL);
	if (fl < 0 || fcntl(FD_SYNC, F_SETFL, fl & ~O_NONBLOCK) != 0)
		fail(errno, "sync pipe");
	// Unlike the Go init this one runs as host root (in new PID, mount,
	// network, IPC and UTS namespaces) until it makes its user namespace
	// below. Its mount namespace is a copy of the spawner's template; the
	// sandbox's own part of the root comes from its config (the parent
	// opens its listener meanwhile).
	struct config c;
	memset(&c, 0, sizeof c);
	read_config(&c, 0);
	if (template_fits(&c)) {
		setup_from_template(&c);
	} else {
		setup_base(&template_base);
		setup_rest(&c);
	}
	// A /dev/null of its own as stdin, from its /dev (the spawner's is
	// one open file, shared with every fork).
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0)
		fail(errno, "stdin");
	close(null);
	if (sethostname(c.hostname, strlen(c.hostname)) != 0)
		fail(errno, "sethostname");
	loopback_up();
	// The namespaces above belong to the host's user namespace, and this
	// process set them up as host root. Now the sandbox's own user
	// namespace, which the parent maps (mapIDs in manager_linux.go); the
	// process has every capability in it, none outside.
	if (unshare(CLONE_NEWUSER) != 0)
		fail(errno, "unshare user ns");
	char ready = 1; // userNSReady
	if (write(FD_ERR, &ready, 1) != 1)
		fail(errno, "report the user namespace");
	char go;
	read_full(FD_SYNC, &go, 1, "wait for the parent");
	if (go != GO_BYTE)
		fail(0, "wait for the parent: got %d", go);
	close(FD_SYNC);
	// Now in the sandbox's cgroups and id-mapped: make the cgroups the
	// cgroup namespace's root.
	if (unshare(CLONE_NEWCGROUP) != 0)
		fail(errno, "unshare cgroup ns");
	drop_privileges(c.uid, c.gid);
	if (chdir(c.dir) != 0)
		fail(errno, "chdir %s", c.dir);
	// Last: from here on only the exec itself may run.
	load_seccomp(&c);
	execve(c.path, c.argv, c.env);
	fail(errno, "exec %s", c.path);
}

// The spawner (spawner_linux.go says why it exists). Its descriptors are
// the init's: FD_SYNC is a SOCK_SEQPACKET socket to the parent (its
// control socket), FD_ERR a pipe for the message of a failed start
// (closed once the template is built), FD_PARENT a pidfd of the parent.

// clone3's arguments, under a name of our own (C libraries that predate
// them).
struct ember_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

// spawned is the new init, in its namespaces: it puts the descriptors
// where run_init wants them, closes the spawner's others and becomes the
// init.
static void spawned(int sync, int errw) {
	// FD_PARENT is in place; sync and errw arrived on the lowest free
	// numbers (FD_ERR and above, as the spawner closed its FD_ERR): copies
	// above the fixed numbers first. Until errw is FD_ERR, fail() cannot
	// report. FD_SYNC is the spawner's control socket until replaced.
	int s = fcntl(sync, F_DUPFD, 16);
	int e = s < 0 ? -1 : fcntl(errw, F_DUPFD, 16);
	if (e < 0 || dup2(e, FD_ERR) < 0) {
		char msg[32];
		int n = snprintf(msg, sizeof msg, "spawn: dup%c%d", 0, errno);
		ssize_t w = write(errw, msg, n);
		(void)w;
		_exit(1);
	}
	if (dup2(s, FD_SYNC) < 0)
		fail(errno, "spawn: dup");
	if (syscall(SYS_close_range, FD_PARENT + 1, ~0U, 0) != 0) {
		if (errno != ENOSYS)
			fail(errno, "spawn: close descriptors");
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = FD_PARENT + 1; fd < max && fd < (1 << 20); fd++)
			close(fd);
	}
	// As the Go init gets from os/exec: a session of its own (no
	// controlling terminal to inject input into or to signal), and
	// SIGKILL when the parent thread dies (re-armed by drop_privileges).
	if (setsid() < 0)
		fail(errno, "spawn: setsid");
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		fail(errno, "spawn: pdeathsig");
	struct pollfd pfd = {.fd = FD_PARENT, .events = POLLIN};
	if (poll(&pfd, 1, 0) > 0)
		fail(0, "spawn: parent exited");
	run_init(); // does not return
}

// spawn clones an init into new PID, mount, network, IPC and UTS
// namespaces (and into the cgroup of cgroup_fd unless it is -1), as a
// child of the spawner's parent (CLONE_PARENT). It returns its pid, or -1
// with errno set.
static long spawn(int sync, int errw, int cgroup_fd) {
	uint64_t flags = CLONE_PARENT | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
	// exit_signal must be 0 with CLONE_PARENT: the child signals the
	// parent as the spawner does (SIGCHLD).
	struct ember_clone_args a = {.flags = flags};
	if (cgroup_fd >= 0) {
		a.flags |= CLONE_INTO_CGROUP;
		a.cgroup = (uint64_t)cgroup_fd;
	}
	// clone3 is Linux 5.3, as pidfd_open, which Ember needs anyway.
	long pid = syscall(SYS_clone3, &a, sizeof a);
	if (pid == 0)
		spawned(sync, errw);
	return pid;
}

// spawner_reply sends the answer to one request: the pid, or 0 and an
// errno.
static void spawner_reply(int32_t pid, int32_t err) {
	int32_t r[2] = {pid, err};
	ssize_t n;
	do
		n = send(FD_SYNC, r, sizeof r, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != sizeof r)
		_exit(2);
}

// run_spawner builds the template from the base config, which the parent
// sends first, answers {0, 0} (ready), then serves the parent's requests
// until it closes its end. A request is a uint32 (1: a cgroup descriptor
// comes last) with the init's sync socket and error pipe (and the
// cgroup's descriptor) attached. A failure before ready is reported on
// FD_ERR as the init's are.
static void run_spawner(void) {
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		fail(errno, "spawner: pdeathsig");
	struct pollfd pfd = {.fd = FD_PARENT, .events = POLLIN};
	int r = poll(&pfd, 1, 0);
	if (r < 0)
		fail(errno, "spawner: poll the parent");
	if (r > 0)
		fail(0, "spawner: parent exited");
	read_config(&template_base, 1);
	setup_template(&template_base);
	close(FD_ERR);
	spawner_reply(0, 0);
	for (;;) {
		uint32_t req;
		union {
			char buf[CMSG_SPACE(3 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = &req, .iov_len = sizeof req};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
		ssize_t n;
		do
			n = recvmsg(FD_SYNC, &msg, MSG_CMSG_CLOEXEC);
		while (n < 0 && errno == EINTR);
		if (n == 0)
			_exit(0); // the parent is done with us
		if (n < 0)
			_exit(2);
		int fds[3], nfds = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (nfds + k > 3)
				_exit(2);
			memcpy(fds + nfds, CMSG_DATA(c), k * sizeof(int));
			nfds += k;
		}
		int want = (n == sizeof req && !(msg.msg_flags & MSG_CTRUNC)) ? 2 + (req == 1) : -1;
		long pid = -1;
		int err = EINVAL;
		if (nfds == want) {
			pid = spawn(fds[0], fds[1], req == 1 ? fds[2] : -1);
			err = errno;
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		spawner_reply(pid > 0 ? (int32_t)pid : 0, pid > 0 ? 0 : err);
	}
}

// program_invocation_name is argv[0], set by the C library (glibc and
// musl) before it runs the constructors.
__attribute__((constructor)) static void ember_sandbox_init(void) {
	if (program_invocation_name != NULL && strcmp(program_invocation_name, EMBER_SPAWNER_ARG0) == 0)
		run_spawner(); // does not return
}
