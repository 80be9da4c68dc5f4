package main

// int80 makes a system call through the i386 entry (int80_amd64.s).
func int80(trap, a1, a2, a3 uintptr) uintptr
