//go:build !unix

package codepkg

// oNoFollow is Unix's O_NOFOLLOW; elsewhere os.Root itself refuses to
// follow symbolic links when creating files with O_EXCL.
const oNoFollow = 0
