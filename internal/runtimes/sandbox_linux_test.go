//go:build linux

package runtimes

// These tests run the runtime clients as the worker does: inside a real
// sandbox (as root only), with the host interpreter seen through the
// sandbox's read-only /usr, the clients mounted read-only at /var/runtime,
// the code read-only at /var/task, as the sandbox's unprivileged user.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emberfn/ember/internal/runtimeapi"
	"github.com/emberfn/ember/internal/sandbox"
)

func TestInSandbox(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("sandboxes need root (CI=true: failing instead of skipping)")
		}
		t.Skip("sandboxes need root")
	}
	m, err := sandbox.NewManager(sandbox.Config{CgroupParent: "ember-runtimes-test-" + strconv.Itoa(os.Getpid()),
		MountTargets: []string{SandboxTaskDir, "/opt", SandboxRuntimeDir}})
	if errors.Is(err, sandbox.ErrUnsupported) && os.Getenv("CI") != "true" {
		t.Skipf("no sandboxes here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	// The runtime directory is in a 0700 directory, as a worker's may be:
	// what the sandbox's user needs is the mounted directory's own mode.
	rtDir := installed(t)

	cases := []struct {
		family, handler string
	}{
		{FamilyPython, "ctx.handler"},
		{FamilyNode, "cjs.context"},
		{FamilyNode, "esm.handler"},
	}
	seq := 0
	for _, c := range cases {
		for _, rt := range runtimesOf(t, c.family) {
			seq++
			t.Run(rt.Name+"/"+c.handler, func(t *testing.T) {
				task := copyFixture(t, rt.Family)
				if err := filepath.Walk(task, func(p string, fi os.FileInfo, err error) error {
					if err == nil && fi.IsDir() {
						err = os.Chmod(p, 0o755)
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				prog, args, env, err := Command(rt, c.handler, Options{MemoryMB: 256})
				if err != nil {
					t.Fatal(err)
				}
				out := &lockedBuffer{}
				spec := sandbox.Spec{
					ID:   "runtimes-" + strconv.Itoa(seq) + "-" + strconv.Itoa(os.Getpid()),
					Path: prog,
					Args: args,
					Env: MergeEnv([]string{
						"AWS_LAMBDA_FUNCTION_NAME=" + testFunction,
						"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
						"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
						"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + testFunction,
						"AWS_LAMBDA_LOG_STREAM_NAME=" + testStream,
						"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001",
						"_HANDLER=" + c.handler,
						"LAMBDA_TASK_ROOT=/var/task",
						"LAMBDA_RUNTIME_DIR=/var/runtime",
						"TZ=:UTC",
						"LANG=en_US.UTF-8",
						"PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin",
					}, env),
					Dir: "/var/task",
					Mounts: []sandbox.Mount{
						{Source: task, Target: "/var/task", ReadOnly: true},
						{Source: rtDir, Target: "/var/runtime", ReadOnly: true},
					},
					MemoryMB:      256,
					ListenAddr:    "127.0.0.1:9001",
					ListenAddrEnv: "AWS_LAMBDA_RUNTIME_API",
					Stdout:        out,
					Stderr:        out,
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				begin := time.Now()
				sb, err := m.Start(ctx, spec)
				if err != nil {
					t.Fatal(err)
				}
				api := runtimeapi.New(runtimeapi.Config{FunctionARN: testARN})
				go api.Serve(sb.Listener())
				defer func() {
					sb.Destroy(context.Background())
					api.Close()
					if t.Failed() {
						t.Logf("output:\n%s", out.String())
					}
				}()
				ictx, icancel := context.WithTimeout(ctx, 20*time.Second)
				defer icancel()
				go func() {
					select {
					case <-sb.Done():
						icancel()
					case <-ictx.Done():
					}
				}()
				if err := api.WaitInit(ictx); err != nil {
					t.Fatalf("init: %v (exit: %v)", err, sb.ExitError())
				}
				t.Logf("cold start (sandbox start to the runtime's first /next): %v", time.Since(begin))
				resp, err := api.Invoke(ictx, &runtimeapi.Invocation{
					RequestID: "sandboxed-1", Payload: []byte(`{"k":"v"}`), Deadline: time.Now().Add(5 * time.Second),
				})
				if err != nil {
					t.Fatalf("invoke: %v (exit: %v)", err, sb.ExitError())
				}
				if resp.FunctionError != "" {
					t.Fatalf("function error %s: %s", resp.FunctionError, resp.Payload)
				}
				var got map[string]any
				if err := json.Unmarshal(resp.Payload, &got); err != nil {
					t.Fatalf("%s: %v", resp.Payload, err)
				}
				switch c.handler {
				case "ctx.handler":
					if got["aws_request_id"] != "sandboxed-1" || got["function_name"] != testFunction {
						t.Errorf("python context: %v", got)
					}
				case "cjs.context":
					if got["awsRequestId"] != "sandboxed-1" || got["memoryLimitInMB"] != "256" {
						t.Errorf("node context: %v", got)
					}
				case "esm.handler":
					if got["esm"] != true {
						t.Errorf("esm: %v", got)
					}
				}
			})
		}
	}
}
