package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/term"

	"github.com/cairn-db/cairn/internal/tool"
)

func newAuthCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("auth <enable or disable>", "Enable or disable authentication")
	cmd.AddCommand(&cobra.Command{
		Use:   "enable",
		Short: "Enables authentication",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return tool.BadArgs("auth enable command does not accept any arguments")
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				// As etcdctl: the root role is created and granted to root
				// if it does not exist yet.
				var resp *clientv3.AuthEnableResponse
				var err error
				for {
					if resp, err = cli.AuthEnable(ctx); err == nil || !errors.Is(err, rpctypes.ErrRootRoleNotExist) {
						break
					}
					if _, err = cli.RoleAdd(ctx, "root"); err != nil {
						break
					}
					if _, err = cli.UserGrantRole(ctx, "root", "root"); err != nil {
						break
					}
				}
				if err != nil {
					return err
				}
				return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) },
					func() { fmt.Fprintln(g.stdout, "Authentication Enabled") })
			})
		},
	}, &cobra.Command{
		Use:   "disable",
		Short: "Disables authentication",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return tool.BadArgs("auth disable command does not accept any arguments")
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				if _, err := cli.AuthDisable(ctx); err != nil {
					return err
				}
				// etcdctl prints this in every output format.
				fmt.Fprintln(g.stdout, "Authentication Disabled")
				return nil
			})
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "Returns authentication status",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return tool.BadArgs("auth status command does not accept any arguments")
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.AuthStatus(ctx)
				if err != nil {
					return err
				}
				return g.display(resp, nil, func() {
					g.printHeaderFields(resp.Header)
					fmt.Fprintln(g.stdout, `"Enabled" :`, resp.Enabled)
					fmt.Fprintln(g.stdout, `"AuthRevision" :`, resp.AuthRevision)
				}, func() {
					fmt.Fprintln(g.stdout, "Authentication Status:", resp.Enabled)
					fmt.Fprintln(g.stdout, "AuthRevision:", resp.AuthRevision)
				})
			})
		},
	})
	return cmd
}

func newUserCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("user <subcommand>", "User related commands")
	var newPassword string
	var noPassword, addInteractive, passwdInteractive bool
	add := &cobra.Command{
		Use:   "add <user name or user:password> [options]",
		Short: "Adds a new user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("user add command requires user name as its argument")
			}
			// As etcdctl: the argument is the name alone with
			// --no-password or --new-user-password, else "name:password"
			// or a name whose password is asked for.
			name, password, hasPassword := strings.Cut(args[0], ":")
			if noPassword || newPassword != "" {
				name, hasPassword = args[0], false
			}
			if hasPassword && name == "" {
				return tool.BadArgs("empty user name is not allowed")
			}
			if !hasPassword && !noPassword {
				var err error
				switch {
				case newPassword != "":
					password = newPassword
				case addInteractive:
					password, err = g.askPassword(name)
				default:
					password = g.scanPassword()
				}
				if err != nil {
					return err
				}
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				var resp *clientv3.AuthUserAddResponse
				var err error
				if noPassword {
					resp, err = cli.UserAddWithOptions(ctx, name, "", &clientv3.UserAddOptions{NoPassword: true})
				} else {
					resp, err = cli.UserAdd(ctx, name, password)
				}
				if err != nil {
					return err
				}
				return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) },
					func() { fmt.Fprintf(g.stdout, "User %s created\n", name) })
			})
		},
	}
	add.Flags().StringVar(&newPassword, "new-user-password", "", "Supply password from the command line flag")
	add.Flags().BoolVar(&noPassword, "no-password", false, "Create a user without password (CN based auth only)")
	add.Flags().BoolVar(&addInteractive, "interactive", true, "Read password from stdin instead of interactive terminal")
	passwd := &cobra.Command{
		Use:   "passwd <user name> [options]",
		Short: "Changes password of user",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("user passwd command requires user name as its argument")
			}
			var password string
			if passwdInteractive {
				var err error
				if password, err = g.askPassword(args[0]); err != nil {
					return err
				}
			} else {
				password = g.scanPassword()
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.UserChangePassword(ctx, args[0], password)
				if err != nil {
					return err
				}
				return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) },
					func() { fmt.Fprintln(g.stdout, "Password updated") })
			})
		},
	}
	passwd.Flags().BoolVar(&passwdInteractive, "interactive", true, "If true, read password from stdin instead of interactive terminal")

	oneUser := func(use, short, usage string, run func(cli *clientv3.Client, ctx context.Context, name string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("%s", usage)
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error { return run(cli, ctx, args[0]) })
		}}
	}
	del := oneUser("delete <user name>", "Deletes a user", "user delete command requires user name as its argument",
		func(cli *clientv3.Client, ctx context.Context, name string) error {
			resp, err := cli.UserDelete(ctx, name)
			if err != nil {
				return err
			}
			return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) },
				func() { fmt.Fprintf(g.stdout, "User %s deleted\n", name) })
		})
	var detail bool
	get := oneUser("get <user name> [options]", "Gets detailed information of a user", "user get command requires user name as its argument",
		func(cli *clientv3.Client, ctx context.Context, name string) error {
			resp, err := cli.UserGet(ctx, name)
			if err != nil {
				return err
			}
			if detail {
				// As etcdctl, in every output format: the name, then each
				// role as role get prints it.
				fmt.Fprintf(g.stdout, "User: %s\n", name)
				for _, role := range resp.Roles {
					fmt.Fprintln(g.stdout)
					rresp, err := cli.RoleGet(ctx, role)
					if err != nil {
						return err
					}
					if err := g.displayRoleGet(role, rresp); err != nil {
						return err
					}
				}
				return nil
			}
			if g.writeOut == formatFields {
				return tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("fields not supported as output format")}
			}
			return g.display(resp, nil, func() {}, func() {
				fmt.Fprintf(g.stdout, "User: %s\n", name)
				fmt.Fprint(g.stdout, "Roles:")
				for _, r := range resp.Roles {
					fmt.Fprint(g.stdout, " "+r)
				}
				fmt.Fprintln(g.stdout)
			})
		})
	get.Flags().BoolVar(&detail, "detail", false, "Show permissions of roles granted to the user")
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists all users",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return tool.BadArgs("user list command requires no arguments")
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.UserList(ctx)
				if err != nil {
					return err
				}
				if g.writeOut == formatFields {
					return tool.ExitErr{Code: tool.ExitBadFeature, Err: fmt.Errorf("fields not supported as output format")}
				}
				return g.display(resp, nil, func() {}, func() {
					for _, u := range resp.Users {
						fmt.Fprintln(g.stdout, u)
					}
				})
			})
		},
	}
	roleOfUser := func(use, short, usage, done string, grant bool) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return tool.BadArgs("%s", usage)
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				var hdr any
				var err error
				if grant {
					var r *clientv3.AuthUserGrantRoleResponse
					r, err = cli.UserGrantRole(ctx, args[0], args[1])
					hdr = r
				} else {
					var r *clientv3.AuthUserRevokeRoleResponse
					r, err = cli.UserRevokeRole(ctx, args[0], args[1])
					hdr = r
				}
				if err != nil {
					return err
				}
				return g.display(hdr, nil, func() {}, func() { fmt.Fprintf(g.stdout, done+"\n", args[1], args[0]) })
			})
		}}
	}
	cmd.AddCommand(add, del, get, list, passwd,
		roleOfUser("grant-role <user name> <role name>", "Grants a role to a user", "user grant command requires user name and role name as its argument", "Role %s is granted to user %s", true),
		roleOfUser("revoke-role <user name> <role name>", "Revokes a role from a user", "user revoke-role requires user name and role name as its argument", "Role %s is revoked from user %s", false))
	return cmd
}

func newRoleCommand(g *globals) *cobra.Command {
	cmd := g.parentCommand("role <subcommand>", "Role related commands")
	oneRole := func(use, short, usage string, run func(cli *clientv3.Client, ctx context.Context, name string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return tool.BadArgs("%s", usage)
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error { return run(cli, ctx, args[0]) })
		}}
	}
	add := oneRole("add <role name>", "Adds a new role", "role add command requires role name as its argument",
		func(cli *clientv3.Client, ctx context.Context, name string) error {
			resp, err := cli.RoleAdd(ctx, name)
			if err != nil {
				return err
			}
			return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) },
				func() { fmt.Fprintf(g.stdout, "Role %s created\n", name) })
		})
	del := oneRole("delete <role name>", "Deletes a role", "role delete command requires role name as its argument",
		func(cli *clientv3.Client, ctx context.Context, name string) error {
			resp, err := cli.RoleDelete(ctx, name)
			if err != nil {
				return err
			}
			return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) },
				func() { fmt.Fprintf(g.stdout, "Role %s deleted\n", name) })
		})
	get := oneRole("get <role name>", "Gets detailed information of a role", "role get command requires role name as its argument",
		func(cli *clientv3.Client, ctx context.Context, name string) error {
			resp, err := cli.RoleGet(ctx, name)
			if err != nil {
				return err
			}
			return g.displayRoleGet(name, resp)
		})
	list := &cobra.Command{
		Use:   "list",
		Short: "Lists all roles",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return tool.BadArgs("role list command requires no arguments")
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.RoleList(ctx)
				if err != nil {
					return err
				}
				return g.display(resp, nil, func() {
					g.printHeaderFields(resp.Header)
					fmt.Fprint(g.stdout, `"Roles" :`)
					for _, r := range resp.Roles {
						fmt.Fprintf(g.stdout, " %q", r)
					}
					fmt.Fprintln(g.stdout)
				}, func() {
					for _, r := range resp.Roles {
						fmt.Fprintln(g.stdout, r)
					}
				})
			})
		},
	}
	var prefix, fromKey bool
	grant := &cobra.Command{
		Use:   "grant-permission [options] <role name> <permission type> <key> [endkey]",
		Short: "Grants a key to a role",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 3 {
				return tool.BadArgs("role grant command requires role name, permission type, and key [endkey] as its argument")
			}
			permType, ok := map[string]clientv3.PermissionType{"READ": clientv3.PermissionType(clientv3.PermRead),
				"WRITE": clientv3.PermissionType(clientv3.PermWrite), "READWRITE": clientv3.PermissionType(clientv3.PermReadWrite)}[strings.ToUpper(args[1])]
			if !ok {
				return tool.BadArgs("invalid permission type: %s", args[1])
			}
			key, end, err := permRange(args[2:], prefix, fromKey)
			if err != nil {
				return err
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.RoleGrantPermission(ctx, args[0], key, end, permType)
				if err != nil {
					return err
				}
				return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) },
					func() { fmt.Fprintf(g.stdout, "Role %s updated\n", args[0]) })
			})
		},
	}
	grant.Flags().BoolVar(&prefix, "prefix", false, "grant a prefix permission")
	grant.Flags().BoolVar(&fromKey, "from-key", false, "grant a permission of keys that are greater than or equal to the given key using byte compare")
	var rprefix, rfromKey bool
	revoke := &cobra.Command{
		Use:   "revoke-permission <role name> <key> [endkey]",
		Short: "Revokes a key from a role",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return tool.BadArgs("role revoke-permission command requires role name and key [endkey] as its argument")
			}
			key, end, err := permRange(args[1:], rprefix, rfromKey)
			if err != nil {
				return err
			}
			return g.request(func(cli *clientv3.Client, ctx context.Context) error {
				resp, err := cli.RoleRevokePermission(ctx, args[0], key, end)
				if err != nil {
					return err
				}
				return g.display(resp, nil, func() { g.printHeaderFields(resp.Header) }, func() {
					switch {
					case len(end) == 0:
						fmt.Fprintf(g.stdout, "Permission of key %s is revoked from role %s\n", key, args[0])
					case end == "\x00":
						// etcdctl's, unclosed bracket and all.
						fmt.Fprintf(g.stdout, "Permission of range [%s, <open ended> is revoked from role %s\n", key, args[0])
					default:
						fmt.Fprintf(g.stdout, "Permission of range [%s, %s) is revoked from role %s\n", key, end, args[0])
					}
				})
			})
		},
	}
	revoke.Flags().BoolVar(&rprefix, "prefix", false, "revoke a prefix permission")
	revoke.Flags().BoolVar(&rfromKey, "from-key", false, "revoke a permission of keys that are greater than or equal to the given key using byte compare")
	cmd.AddCommand(add, del, get, list, grant, revoke)
	return cmd
}

// permRange is a permission's key range from its arguments and flags.
func permRange(args []string, prefix, fromKey bool) (string, string, error) {
	key := args[0]
	if len(args) > 1 {
		if prefix || fromKey {
			return "", "", tool.BadArgs("unexpected endkey argument with --prefix or --from-key")
		}
		return key, args[1], nil
	}
	switch {
	case prefix && fromKey:
		return "", "", tool.BadArgs("--from-key and --prefix flags are mutually exclusive")
	case prefix:
		return key, clientv3.GetPrefixRangeEnd(key), nil
	case fromKey:
		if len(key) == 0 {
			key = "\x00"
		}
		return key, "\x00", nil
	}
	return key, "", nil
}

// printRolePermissions prints a role's read and write ranges as etcdctl.
func (g *globals) printRolePermissions(name string, resp *clientv3.AuthRoleGetResponse) {
	fmt.Fprintf(g.stdout, "Role %s\n", name)
	printPerms := func(read bool) {
		for _, p := range resp.Perm {
			t := p.PermType
			if (read && t != clientv3.PermRead && t != clientv3.PermReadWrite) ||
				(!read && t != clientv3.PermWrite && t != clientv3.PermReadWrite) {
				continue
			}
			key, end := string(p.Key), string(p.RangeEnd)
			if len(end) == 0 {
				fmt.Fprintf(g.stdout, "\t%s\n", key)
				continue
			}
			if end != "\x00" {
				fmt.Fprintf(g.stdout, "\t[%s, %s)", key, end)
			} else {
				fmt.Fprintf(g.stdout, "\t[%s, <open ended>", key)
			}
			if clientv3.GetPrefixRangeEnd(key) == end && len(key) > 0 {
				fmt.Fprintf(g.stdout, " (prefix %s)", key)
			}
			fmt.Fprintln(g.stdout)
		}
	}
	fmt.Fprintln(g.stdout, "KV Read:")
	printPerms(true)
	fmt.Fprintln(g.stdout, "KV Write:")
	printPerms(false)
}

// displayRoleGet prints a role get answer in the output format asked for.
func (g *globals) displayRoleGet(name string, resp *clientv3.AuthRoleGetResponse) error {
	return g.display(resp, nil, func() {
		g.printHeaderFields(resp.Header)
		for _, p := range resp.Perm {
			// etcdctl's Println: two spaces after the colon.
			fmt.Fprintln(g.stdout, `"PermType" : `, p.PermType.String())
			fmt.Fprintf(g.stdout, "\"Key\" : %q\n", string(p.Key))
			fmt.Fprintf(g.stdout, "\"RangeEnd\" : %q\n", string(p.RangeEnd))
		}
	}, func() { g.printRolePermissions(name, resp) })
}

// askPassword asks for name's password twice, as etcdctl does: prompts on
// stdout, the answers from the terminal without echo (or, when stdin is
// not a terminal, a line each).
func (g *globals) askPassword(name string) (string, error) {
	read := func(prompt string) string {
		fmt.Fprint(g.stdout, prompt)
		defer fmt.Fprintln(g.stdout)
		return g.readSecret()
	}
	password := read(fmt.Sprintf("Password of %s: ", name))
	if password == "" {
		return "", tool.BadArgs("empty password")
	}
	if read(fmt.Sprintf("Type password of %s again for confirmation: ", name)) != password {
		return "", tool.BadArgs("given passwords are different")
	}
	return password, nil
}

// scanPassword reads the password with --interactive=false: the first
// word on stdin, as etcdctl's fmt.Scanf("%s") takes it; none is an empty
// password.
func (g *globals) scanPassword() string {
	var password string
	fmt.Fscanf(g.stdin, "%s", &password)
	return password
}

// readSecret reads a line from the terminal without echo, or from stdin
// when it is not a terminal; surrounding white space is dropped, as
// etcdctl drops it.
func (g *globals) readSecret() string {
	if f, ok := g.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b, _ := term.ReadPassword(int(f.Fd()))
		return strings.TrimSpace(string(b))
	}
	if g.lines == nil {
		g.lines = bufio.NewReader(g.stdin)
	}
	line, _ := g.lines.ReadString('\n')
	return strings.TrimSpace(line)
}
