//go:build linux

package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseProcCgroup(t *testing.T) {
	in := "12:cpu,cpuacct:/a/b\n4:memory:/process_api/x\n1:name=systemd:/\n0::/user.slice/s\n"
	got := parseProcCgroup([]byte(in))
	want := map[string]string{"cpu": "/a/b", "cpuacct": "/a/b", "memory": "/process_api/x", "name=systemd": "/", "": "/user.slice/s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

const mountinfo = `24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/my\040unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
`

func TestParseCgroupMounts(t *testing.T) {
	got := parseCgroupMounts([]byte(mountinfo))
	want := []cgroupMount{
		{root: "/", point: "/sys/fs/cgroup/cpu,cpuacct", controllers: []string{"cpu", "cpuacct"}},
		{root: "/docker/abc", point: "/sys/fs/cgroup/memory", controllers: []string{"memory"}},
		{root: "/", point: "/sys/fs/cgroup/pids", controllers: []string{"pids"}},
		{root: "/", point: "/sys/fs/cgroup/systemd"},
		{root: "/", point: "/sys/fs/cgroup/my unified", v2: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestHierarchyDir(t *testing.T) {
	mounts := parseCgroupMounts([]byte(mountinfo))
	own := map[string]string{"cpu": "/", "memory": "/docker/abc/sub", "pids": "/p", "": "/svc"}
	for _, tc := range []struct{ controller, want, err string }{
		{"cpu", "/sys/fs/cgroup/cpu,cpuacct", ""},
		{"memory", "/sys/fs/cgroup/memory/sub", ""},
		{"pids", "/sys/fs/cgroup/pids/p", ""},
		{"", "/sys/fs/cgroup/my unified/svc", ""},
		{"blkio", "", "no blkio hierarchy"},
	} {
		got, err := hierarchyDir(mounts, own, tc.controller)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: got %q, %v; want %q, %q", tc.controller, got, err, tc.want, tc.err)
		}
	}
	// A group outside the mount's root is not reachable through it.
	if _, err := hierarchyDir(mounts, map[string]string{"memory": "/other"}, "memory"); !errors.Is(err, ErrUnsupported) {
		t.Errorf("group outside the mount: %v", err)
	}
}

func TestNormalize(t *testing.T) {
	ok := Spec{ID: "a-1", Path: "/var/task/bootstrap"}
	if err := ok.normalize(); err != nil {
		t.Fatal(err)
	}
	want := Spec{ID: "a-1", Path: "/var/task/bootstrap", Dir: "/", TmpSizeMB: 512, MemoryMB: 128,
		PidsMax: 1024, CPUWeight: 100, UID: 993, GID: 990, Network: NetworkNone}
	if !reflect.DeepEqual(ok, want) {
		t.Errorf("defaults: got %+v", ok)
	}
	for name, edit := range map[string]func(*Spec){
		"empty id":         func(s *Spec) { s.ID = "" },
		"id with slash":    func(s *Spec) { s.ID = "a/b" },
		"id too long":      func(s *Spec) { s.ID = strings.Repeat("a", 64) },
		"relative path":    func(s *Spec) { s.Path = "bootstrap" },
		"unclean path":     func(s *Spec) { s.Path = "/var/../bootstrap" },
		"relative dir":     func(s *Spec) { s.Dir = "task" },
		"mount on /":       func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/"}} },
		"mount in /usr":    func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/usr/local"}} },
		"mount on /tmp":    func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/tmp"}} },
		"mount dotdot":     func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/opt/../etc"}} },
		"relative source":  func(s *Spec) { s.Mounts = []Mount{{Source: "x", Target: "/opt"}} },
		"tiny memory":      func(s *Spec) { s.MemoryMB = 8 },
		"cpu weight":       func(s *Spec) { s.CPUWeight = 10001 },
		"listen name":      func(s *Spec) { s.ListenAddr = "localhost:9001" },
		"negative uid":     func(s *Spec) { s.UID = -1 },
		"uid out of range": func(s *Spec) { s.UID = IDRangeSize },
		"gid out of range": func(s *Spec) { s.GID = IDRangeSize },
		"outbound network": func(s *Spec) { s.Network = NetworkOutbound },
		"tiny cpu cap":     func(s *Spec) { s.CPUMilli = 5 },
		"unknown network":  func(s *Spec) { s.Network = "host" },
		"env without addr": func(s *Spec) { s.ListenAddrEnv = "X" },
		"bad env name":     func(s *Spec) { s.ListenAddr, s.ListenAddrEnv = "127.0.0.1:1", "A=B" },
	} {
		s := Spec{ID: "a", Path: "/p"}
		edit(&s)
		if err := s.normalize(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: %v, want ErrInvalidSpec", name, err)
		}
	}
}

func TestMkMountpoint(t *testing.T) {
	root := t.TempDir()
	os.Symlink("/etc", filepath.Join(root, "link"))
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	if p, err := mkMountpoint(root, "/var/task", true); err != nil || p != root+"/var/task" {
		t.Errorf("dir: %q %v", p, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "var/task")); err != nil || !fi.IsDir() {
		t.Errorf("dir not made: %v", err)
	}
	if _, err := mkMountpoint(root, "/opt/conf/x.json", false); err != nil {
		t.Errorf("file: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "opt/conf/x.json")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("file not made: %v", err)
	}
	if _, err := mkMountpoint(root, "/link/x", true); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("through a symlink: %v", err)
	}
	if _, err := os.Stat("/etc/x"); err == nil {
		t.Error("followed the symlink")
	}
	if _, err := mkMountpoint(root, "/file/x", true); err == nil {
		t.Error("through a file: no error")
	}
}

func TestNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs only without root")
	}
	if _, err := NewManager(Config{}); !errors.Is(err, ErrNotRoot) {
		t.Errorf("NewManager without root: %v, want ErrNotRoot", err)
	}
}
