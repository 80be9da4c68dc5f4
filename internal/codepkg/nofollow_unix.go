//go:build unix

package codepkg

import "syscall"

// oNoFollow makes opening a symbolic link fail. os.Root adds it on Unix
// too; it is spelled out here so the intent survives any refactoring.
const oNoFollow = syscall.O_NOFOLLOW
